//! The filter chain: several plugins on one HTTP stream, run like Envoy's `http_filters`.
//!
//! The request path runs filters 1..N, the response path N..1. A filter that pauses stops
//! iteration until it calls `proxy_continue_stream` (from a callout callback) or the test
//! resumes it; its body buffer accumulates while it pauses (notes §2.5). A local reply from
//! filter k ends the request path and runs the response callbacks of filters k..1 only; one
//! sent once the response is on its way goes straight to the client (Envoy's direct reply).
//! Request headers become unavailable to a filter once its headers phase continued.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use anyhow::{anyhow, bail, Result};

use super::abi;
use super::callouts::{GrpcCall, GrpcReply, HttpCall, HttpReply};
use super::headers::Headers;
use super::message::{Request, Response};
use super::state::{Callback, LocalReply, LogEntry, Stream};
use super::{Host, Plugin};

/// Where a stream stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    RequestHeaders,
    RequestBody,
    RequestTrailers,
    ResponseHeaders,
    ResponseBody,
    ResponseTrailers,
}

/// What became of the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The whole request reached the upstream; answer it with [`Exchange::respond`].
    Forwarded,
    /// A filter answered with a local reply (see [`Exchange::local_reply`]).
    LocalReply(u16),
    /// A filter paused and nothing resumed it yet (e.g. a callout awaits an answer).
    Paused {
        /// The paused plugin.
        filter: String,
        /// The phase it paused in.
        stage: Stage,
    },
    /// A filter reset the stream (`proxy_close_stream`).
    Reset {
        /// The plugin that closed it.
        filter: String,
    },
    /// A filter trapped: Envoy answers 503 and the VM stays broken.
    Trapped {
        /// The trapping plugin.
        filter: String,
        /// The trap and any panic message the guest logged.
        message: String,
    },
}

/// What a side of the stream (the upstream or the client) received.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Received {
    /// Headers as they left the last filter.
    pub headers: Headers,
    /// The body, all chunks joined.
    pub body: Vec<u8>,
    /// Trailers.
    pub trailers: Headers,
    /// Whether the end of stream arrived.
    pub complete: bool,
}

impl Received {
    /// The `:status` of a response (0 when absent).
    pub fn status(&self) -> u16 {
        self.headers.get(":status").and_then(|s| s.parse().ok()).unwrap_or(0)
    }

    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name)
    }

    /// The body as (lossy) text.
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Several plugins in `http_filters` order.
pub struct Chain<'a> {
    host: Host,
    plugins: Vec<&'a Plugin>,
}

impl<'a> Chain<'a> {
    pub(crate) fn new(host: Host, plugins: &[&'a Plugin]) -> Self {
        Self { host, plugins: plugins.to_vec() }
    }

    /// Sends a request through the chain and runs it as far as it goes.
    pub fn send(&self, request: Request) -> Exchange<'a> {
        Exchange::start(self.host.clone(), self.plugins.clone(), request)
    }
}

#[derive(Debug)]
enum Event {
    Headers { eos: bool },
    Data { bytes: Vec<u8>, eos: bool },
    Trailers,
}

#[derive(Debug, Clone, Copy)]
enum Stop {
    Headers { eos: bool },
    Body,
    Trailers,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Request,
    Response,
}

/// One direction of the stream: the filters in order, their pending events, where each stopped.
#[derive(Debug)]
struct Path {
    direction: Direction,
    order: Vec<usize>,
    queues: Vec<VecDeque<Event>>,
    stopped: Vec<Option<Stop>>,
    sink: Received,
    headers_arrived: bool,
    aborted: bool,
}

impl Path {
    fn new(direction: Direction, order: Vec<usize>, events: Vec<Event>) -> Self {
        let n = order.len();
        // One queue per filter, then the sink's (the upstream or the client).
        let mut queues: Vec<VecDeque<Event>> = (0..=n).map(|_| VecDeque::new()).collect();
        if let Some(first) = queues.first_mut() {
            first.extend(events);
        }
        Self {
            direction,
            order,
            queues,
            stopped: vec![None; n],
            sink: Received::default(),
            headers_arrived: false,
            aborted: false,
        }
    }
}

/// Events for a message: headers, body chunks, trailers, with Envoy's end-of-stream flags.
fn events(body: &[Vec<u8>], has_trailers: bool) -> Vec<Event> {
    let has_body = body.iter().any(|c| !c.is_empty());
    let mut out = vec![Event::Headers { eos: !has_body && !has_trailers }];
    if has_body {
        let last = body.len().saturating_sub(1);
        for (i, chunk) in body.iter().enumerate() {
            out.push(Event::Data { bytes: chunk.clone(), eos: i == last && !has_trailers });
        }
    }
    if has_trailers {
        out.push(Event::Trailers);
    }
    out
}

/// One request/response exchange through a chain; read it after [`Chain::send`].
pub struct Exchange<'a> {
    host: Host,
    plugins: Vec<&'a Plugin>,
    contexts: Vec<Option<u32>>,
    stream: Rc<RefCell<Stream>>,
    request: Path,
    response: Option<Path>,
    local_reply: Option<LocalReply>,
    trap: Option<(String, String)>,
    reset: Option<String>,
    client: Option<Received>,
    finished: bool,
}

impl<'a> Exchange<'a> {
    fn start(host: Host, plugins: Vec<&'a Plugin>, request: Request) -> Self {
        let n = plugins.len();
        let stream = Stream {
            request_headers: Headers::from_pairs(request.headers.clone()),
            request_trailers: Headers::from_pairs(request.trailers.clone()),
            properties: request.properties.iter().map(|(p, v)| (p.clone(), v.clone())).collect(),
            slots: (0..n).map(|_| Default::default()).collect(),
            start_ns: host.shared.clock.realtime_ns(),
            connection_id: u64::from(host.shared.token()),
            ..Stream::default()
        };
        let stream = Rc::new(RefCell::new(stream));
        let path = Path::new(Direction::Request, (0..n).collect(), events(&request.body, !request.trailers.is_empty()));
        let mut exchange = Exchange {
            host,
            plugins,
            contexts: vec![None; n],
            stream,
            request: path,
            response: None,
            local_reply: None,
            trap: None,
            reset: None,
            client: None,
            finished: false,
        };
        for index in 0..n {
            let created = exchange.vm_of(index).borrow_mut().create_http_context(exchange.stream.clone(), index);
            match created {
                Ok(id) => exchange.contexts[index] = Some(id),
                Err(message) => {
                    exchange.on_trap(index, message);
                    return exchange;
                }
            }
        }
        exchange.run();
        exchange
    }

    fn vm_of(&self, index: usize) -> &RefCell<super::vm::Vm> {
        &self.plugins[index].vm
    }

    /// What became of the request.
    pub fn verdict(&self) -> Verdict {
        if let Some((filter, message)) = &self.trap {
            return Verdict::Trapped { filter: filter.clone(), message: message.clone() };
        }
        if let Some(filter) = &self.reset {
            return Verdict::Reset { filter: filter.clone() };
        }
        if let Some(reply) = &self.local_reply {
            return Verdict::LocalReply(reply.status);
        }
        if self.request.sink.complete {
            return Verdict::Forwarded;
        }
        match self.paused() {
            Some((filter, stage)) => Verdict::Paused { filter, stage },
            None => Verdict::Paused { filter: String::new(), stage: Stage::RequestHeaders },
        }
    }

    /// The first filter that holds the stream, and where.
    pub fn paused(&self) -> Option<(String, Stage)> {
        let paths = [Some(&self.request), self.response.as_ref()];
        for path in paths.into_iter().flatten() {
            if path.aborted {
                continue;
            }
            for (position, stop) in path.stopped.iter().enumerate() {
                let Some(stop) = stop else { continue };
                let index = path.order[position];
                let stage = match (path.direction, stop) {
                    (Direction::Request, Stop::Headers { .. }) => Stage::RequestHeaders,
                    (Direction::Request, Stop::Body) => Stage::RequestBody,
                    (Direction::Request, Stop::Trailers) => Stage::RequestTrailers,
                    (Direction::Response, Stop::Headers { .. }) => Stage::ResponseHeaders,
                    (Direction::Response, Stop::Body) => Stage::ResponseBody,
                    (Direction::Response, Stop::Trailers) => Stage::ResponseTrailers,
                };
                return Some((self.plugins[index].name().to_string(), stage));
            }
        }
        None
    }

    /// What the upstream received, once the request headers got past every filter.
    pub fn upstream(&self) -> Option<&Received> {
        self.request.headers_arrived.then_some(&self.request.sink)
    }

    /// The local reply a filter sent, if any.
    pub fn local_reply(&self) -> Option<&LocalReply> {
        self.local_reply.as_ref()
    }

    /// What the client received (after the response path, or a local reply, or a trap's 503).
    pub fn client(&self) -> Option<&Received> {
        self.client.as_ref()
    }

    /// The trap that ended the exchange: (plugin, message).
    pub fn trap(&self) -> Option<(&str, &str)> {
        self.trap.as_ref().map(|(f, m)| (f.as_str(), m.as_str()))
    }

    /// Filter state (`proxy_set_property`) by key, e.g. `"palisade.identity"`.
    pub fn filter_state(&self, key: &str) -> Option<Vec<u8>> {
        self.stream.borrow().filter_state.get(key.as_bytes()).cloned()
    }

    /// Log lines the chain's plugins wrote from this exchange's HTTP contexts.
    pub fn logs(&self) -> Vec<LogEntry> {
        let mut out = Vec::new();
        for (index, plugin) in self.plugins.iter().enumerate() {
            let Some(ctx) = self.contexts[index] else { continue };
            out.extend(plugin.logs().into_iter().filter(|e| e.context_id == ctx));
        }
        out
    }

    /// HTTP callouts dispatched by this exchange's contexts and not answered yet.
    pub fn http_calls(&self) -> Vec<HttpCall> {
        let mut out = Vec::new();
        for (index, plugin) in self.plugins.iter().enumerate() {
            let Some(ctx) = self.contexts[index] else { continue };
            out.extend(plugin.http_calls().into_iter().filter(|c| c.context_id == ctx));
        }
        out
    }

    /// gRPC calls dispatched by this exchange's contexts and not answered yet.
    pub fn grpc_calls(&self) -> Vec<GrpcCall> {
        let mut out = Vec::new();
        for (index, plugin) in self.plugins.iter().enumerate() {
            let Some(ctx) = self.contexts[index] else { continue };
            out.extend(plugin.grpc_calls().into_iter().filter(|c| c.context_id == ctx));
        }
        out
    }

    /// Answers an HTTP callout, then runs the stream as far as it goes.
    pub fn answer_http_call(&mut self, token: u32, reply: HttpReply) -> Result<()> {
        let index = self.owner_of(token, |p| p.http_calls().iter().any(|c| c.token == token))?;
        let result = self.vm_of(index).borrow_mut().answer_http_call(token, reply);
        self.after_callback(index, result);
        self.run();
        Ok(())
    }

    /// Answers a gRPC call, then runs the stream as far as it goes.
    pub fn answer_grpc_call(&mut self, token: u32, reply: GrpcReply) -> Result<()> {
        let index = self.owner_of(token, |p| p.grpc_calls().iter().any(|c| c.token == token))?;
        let result = self.vm_of(index).borrow_mut().answer_grpc_call(token, reply);
        self.after_callback(index, result);
        self.run();
        Ok(())
    }

    fn owner_of(&self, token: u32, has: impl Fn(&Plugin) -> bool) -> Result<usize> {
        self.plugins
            .iter()
            .position(|p| has(p))
            .ok_or_else(|| anyhow!("no pending call with token {token} in this chain"))
    }

    /// Applies what another context left on this stream (a root context's `proxy_continue_stream`
    /// or local reply after `proxy_set_effective_context`, e.g. from a tick or a callout answered
    /// through [`Plugin::answer_http_call`]), then runs the stream as far as it goes.
    pub fn poll(&mut self) {
        self.after_callback(0, Ok(()));
        self.run();
        self.maybe_finish();
    }

    /// Resumes the first filter paused on the request path, as `proxy_continue_stream` would.
    pub fn continue_request(&mut self) -> Result<()> {
        let position = self
            .request
            .stopped
            .iter()
            .position(Option::is_some)
            .ok_or_else(|| anyhow!("no filter paused the request"))?;
        resume(&mut self.request, position, &self.stream);
        self.run();
        Ok(())
    }

    /// Resumes the first filter paused on the response path.
    pub fn continue_response(&mut self) -> Result<()> {
        let path = self.response.as_mut().ok_or_else(|| anyhow!("no response yet"))?;
        let position =
            path.stopped.iter().position(Option::is_some).ok_or_else(|| anyhow!("no filter paused the response"))?;
        resume(path, position, &self.stream);
        self.run();
        Ok(())
    }

    /// Feeds the upstream's response into the response path (filters N..1).
    pub fn respond(&mut self, response: Response) -> Result<()> {
        if self.response.is_some() || self.client.is_some() {
            bail!("the exchange already has a response");
        }
        if !self.request.headers_arrived || self.request.aborted {
            bail!("the request did not reach the upstream: {:?}", self.verdict());
        }
        {
            let mut stream = self.stream.borrow_mut();
            stream.response_headers = Headers::from_pairs(response.headers.clone());
            stream.response_trailers = Headers::from_pairs(response.trailers.clone());
        }
        let order = (0..self.plugins.len()).rev().collect();
        self.response =
            Some(Path::new(Direction::Response, order, events(&response.body, !response.trailers.is_empty())));
        self.run();
        Ok(())
    }

    /// Runs both paths until nothing can move.
    fn run(&mut self) {
        loop {
            if self.trap.is_some() || self.reset.is_some() {
                break;
            }
            let moved = self.step(Direction::Request) || self.step(Direction::Response);
            if !moved {
                break;
            }
        }
        self.host.flush_queues();
        self.maybe_finish();
    }

    /// Processes one pending event on a path (earliest filter first); false when idle.
    fn step(&mut self, direction: Direction) -> bool {
        let path = match direction {
            Direction::Request => &mut self.request,
            Direction::Response => match self.response.as_mut() {
                Some(path) => path,
                None => return false,
            },
        };
        if path.aborted {
            return false;
        }
        let n = path.order.len();
        if let Some(sink_events) = path.queues.get_mut(n) {
            let events: Vec<Event> = sink_events.drain(..).collect();
            if !events.is_empty() {
                let stream = self.stream.borrow();
                for event in events {
                    deliver_to_sink(path, event, &stream);
                }
                if direction == Direction::Response && path.sink.complete {
                    self.client = Some(path.sink.clone());
                }
                return true;
            }
        }
        let Some(position) = (0..n).find(|p| path.stopped[*p].is_none() && !path.queues[*p].is_empty()) else {
            return false;
        };
        let Some(event) = path.queues[position].pop_front() else { return false };
        let index = path.order[position];
        self.process(direction, position, index, event);
        true
    }

    fn path_mut(&mut self, direction: Direction) -> Option<&mut Path> {
        match direction {
            Direction::Request => Some(&mut self.request),
            Direction::Response => self.response.as_mut(),
        }
    }

    fn process(&mut self, direction: Direction, position: usize, index: usize, event: Event) {
        let Some(ctx) = self.contexts[index] else { return };
        let ctx_i = ctx as i32;
        let request = direction == Direction::Request;
        let (callback, export, params): (Callback, &str, (i32, i32, i32)) = {
            let mut stream = self.stream.borrow_mut();
            let headers_len = if request { stream.request_headers.len() } else { stream.response_headers.len() };
            let trailers_len = if request { stream.request_trailers.len() } else { stream.response_trailers.len() };
            let Some(slot) = stream.slots.get_mut(index) else { return };
            match &event {
                Event::Headers { eos } => {
                    if request {
                        slot.request_headers_open = true;
                    } else {
                        slot.response_headers_open = true;
                    }
                    let (cb, export) = if request {
                        (Callback::RequestHeaders, "proxy_on_request_headers")
                    } else {
                        (Callback::ResponseHeaders, "proxy_on_response_headers")
                    };
                    (cb, export, (ctx_i, headers_len as i32, i32::from(*eos)))
                }
                Event::Data { bytes, eos } => {
                    let body = if request { &mut slot.request_body } else { &mut slot.response_body };
                    body.extend_from_slice(bytes);
                    let len = body.len() as i32;
                    let (cb, export) = if request {
                        (Callback::RequestBody { eos: *eos }, "proxy_on_request_body")
                    } else {
                        (Callback::ResponseBody { eos: *eos }, "proxy_on_response_body")
                    };
                    (cb, export, (ctx_i, len, i32::from(*eos)))
                }
                Event::Trailers => {
                    let (cb, export) = if request {
                        (Callback::RequestTrailers, "proxy_on_request_trailers")
                    } else {
                        (Callback::ResponseTrailers, "proxy_on_response_trailers")
                    };
                    (cb, export, (ctx_i, trailers_len as i32, 0))
                }
            }
        };
        self.set_callback(index, Some(callback));
        let result = {
            let mut vm = self.vm_of(index).borrow_mut();
            match event {
                Event::Trailers => vm.call::<(i32, i32), i32>(export, ctx, (params.0, params.1)),
                _ => vm.call::<(i32, i32, i32), i32>(export, ctx, params),
            }
        };
        self.set_callback(index, None);
        // A callback the module does not export continues, as in cpp-host.
        let action = result.clone().map(|a| a.unwrap_or(0));
        let sent_local_reply = self.stream.borrow().local_reply.is_some();
        if let Ok(action) = action {
            // After a local reply Envoy forces a stop whatever the filter returned.
            let continued = action == 0 && !sent_local_reply;
            let stream = self.stream.clone();
            if let Some(path) = self.path_mut(direction) {
                apply_action(path, position, index, &event, continued, &stream);
            }
        }
        self.after_callback(index, result.map(|_| ()));
    }

    fn set_callback(&self, index: usize, callback: Option<Callback>) {
        if let Some(slot) = self.stream.borrow_mut().slots.get_mut(index) {
            slot.callback = callback;
        }
    }

    /// Handles what a callback left behind: a trap, a local reply, a close, continues.
    fn after_callback(&mut self, index: usize, result: Result<(), String>) {
        if let Err(message) = result {
            self.on_trap(index, message);
            return;
        }
        let (local_reply, closes, continues) = {
            let mut stream = self.stream.borrow_mut();
            (stream.local_reply.take(), std::mem::take(&mut stream.closes), std::mem::take(&mut stream.continues))
        };
        if let Some((slot, _)) = closes.first() {
            self.reset = Some(self.plugins[*slot].name().to_string());
            self.request.aborted = true;
            if let Some(path) = self.response.as_mut() {
                path.aborted = true;
            }
            return;
        }
        if let Some((slot, reply)) = local_reply {
            self.on_local_reply(slot, reply);
            return;
        }
        for (slot, kind) in continues {
            let direction = if kind == abi::stream::REQUEST { Direction::Request } else { Direction::Response };
            let stream = self.stream.clone();
            if let Some(path) = self.path_mut(direction) {
                if let Some(position) = path.order.iter().position(|i| *i == slot) {
                    if path.stopped[position].is_some() {
                        resume(path, position, &stream);
                    }
                }
            }
        }
    }

    fn on_local_reply(&mut self, sender: usize, reply: LocalReply) {
        if self.local_reply.is_some() {
            return; // One local reply per stream; a second one is ignored.
        }
        let mut headers = Headers::new();
        headers.add(b":status", reply.status.to_string().as_bytes());
        for (key, value) in reply.headers.pairs() {
            headers.add(key.as_bytes(), value);
        }
        if !reply.body.is_empty() {
            headers.replace(b"content-length", reply.body.len().to_string().as_bytes());
            if !headers.contains("content-type") {
                headers.add(b"content-type", b"text/plain");
            }
        }
        let body = reply.body.clone();
        self.local_reply = Some(reply);
        self.request.aborted = true;
        if let Some(path) = self.response.as_mut() {
            // The response already started through the filters: Envoy sends the local reply
            // straight to the client (sendDirectLocalReply), past the encoder filters.
            path.aborted = true;
            self.client = Some(Received { headers, body, trailers: Headers::new(), complete: true });
            return;
        }
        {
            let mut stream = self.stream.borrow_mut();
            stream.response_headers = headers;
            stream.response_trailers = Headers::new();
        }
        // The response callbacks of the sender and of the filters before it, not after.
        let order = (0..=sender).rev().collect();
        self.response = Some(Path::new(Direction::Response, order, events(&[body], false)));
    }

    fn on_trap(&mut self, index: usize, message: String) {
        self.trap = Some((self.plugins[index].name().to_string(), message));
        self.request.aborted = true;
        if let Some(path) = self.response.as_mut() {
            path.aborted = true;
        }
        let mut headers = Headers::new();
        headers.add(b":status", b"503");
        self.client = Some(Received { headers, body: Vec::new(), trailers: Headers::new(), complete: true });
        self.finish_contexts();
    }

    fn maybe_finish(&mut self) {
        if self.finished {
            return;
        }
        let done = self.client.is_some() || self.reset.is_some();
        if done {
            self.finish_contexts();
        }
    }

    /// `on_done`, `on_log`, `on_delete` for every filter still alive (once).
    fn finish_contexts(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        for index in 0..self.plugins.len() {
            let Some(ctx) = self.contexts[index] else { continue };
            if self.vm_of(index).borrow().broken.is_some() {
                continue;
            }
            self.set_callback(index, Some(Callback::Log));
            let result = self.vm_of(index).borrow_mut().finish_http_context(ctx);
            self.set_callback(index, None);
            if let Err(message) = result {
                if self.trap.is_none() {
                    self.trap = Some((self.plugins[index].name().to_string(), message));
                }
            }
        }
        self.host.flush_queues();
    }
}

/// Moves an event past a filter (continue) or records where it stopped (pause).
fn apply_action(
    path: &mut Path,
    position: usize,
    index: usize,
    event: &Event,
    continued: bool,
    stream: &Rc<RefCell<Stream>>,
) {
    let request = path.direction == Direction::Request;
    match *event {
        Event::Headers { eos } => {
            if continued {
                close_headers(stream, index, request);
                emit(path, position + 1, Event::Headers { eos });
            } else {
                path.stopped[position] = Some(Stop::Headers { eos });
            }
        }
        Event::Data { eos, .. } => {
            if continued {
                let bytes = take_body(stream, index, request);
                emit(path, position + 1, Event::Data { bytes, eos });
            } else if eos {
                path.stopped[position] = Some(Stop::Body);
            }
            // Paused before the end: keep buffering; the next chunk calls again with all of it.
        }
        Event::Trailers => {
            if continued {
                flush_then_trailers(path, position, index, stream);
            } else {
                path.stopped[position] = Some(Stop::Trailers);
            }
        }
    }
}

fn flush_then_trailers(path: &mut Path, position: usize, index: usize, stream: &Rc<RefCell<Stream>>) {
    let bytes = take_body(stream, index, path.direction == Direction::Request);
    if !bytes.is_empty() {
        emit(path, position + 1, Event::Data { bytes, eos: false });
    }
    emit(path, position + 1, Event::Trailers);
}

/// Resumes a stopped filter: what it held moves on.
fn resume(path: &mut Path, position: usize, stream: &Rc<RefCell<Stream>>) {
    let Some(stop) = path.stopped[position].take() else { return };
    let index = path.order[position];
    let request = path.direction == Direction::Request;
    match stop {
        Stop::Headers { eos } => {
            close_headers(stream, index, request);
            emit(path, position + 1, Event::Headers { eos });
            // Data that arrived while headers were stopped is delivered as one buffer.
            let queue = &mut path.queues[position];
            let mut merged: Option<(Vec<u8>, bool)> = None;
            while let Some(Event::Data { .. }) = queue.front() {
                if let Some(Event::Data { bytes, eos }) = queue.pop_front() {
                    let entry = merged.get_or_insert_with(|| (Vec::new(), false));
                    entry.0.extend_from_slice(&bytes);
                    entry.1 = eos;
                }
            }
            if let Some((bytes, eos)) = merged {
                queue.push_front(Event::Data { bytes, eos });
            }
        }
        Stop::Body => {
            let bytes = take_body(stream, index, request);
            emit(path, position + 1, Event::Data { bytes, eos: true });
        }
        Stop::Trailers => flush_then_trailers(path, position, index, stream),
    }
}

fn close_headers(stream: &Rc<RefCell<Stream>>, index: usize, request: bool) {
    if let Some(slot) = stream.borrow_mut().slots.get_mut(index) {
        if request {
            slot.request_headers_open = false;
        } else {
            slot.response_headers_open = false;
        }
    }
}

fn take_body(stream: &Rc<RefCell<Stream>>, index: usize, request: bool) -> Vec<u8> {
    let mut stream = stream.borrow_mut();
    match stream.slots.get_mut(index) {
        Some(slot) => std::mem::take(if request { &mut slot.request_body } else { &mut slot.response_body }),
        None => Vec::new(),
    }
}

fn emit(path: &mut Path, position: usize, event: Event) {
    if let Some(queue) = path.queues.get_mut(position) {
        queue.push_back(event);
    }
}

fn deliver_to_sink(path: &mut Path, event: Event, stream: &Stream) {
    let request = path.direction == Direction::Request;
    match event {
        Event::Headers { eos } => {
            path.headers_arrived = true;
            path.sink.headers = if request { stream.request_headers.clone() } else { stream.response_headers.clone() };
            path.sink.complete = eos;
        }
        Event::Data { bytes, eos } => {
            path.sink.body.extend_from_slice(&bytes);
            path.sink.complete = eos;
        }
        Event::Trailers => {
            path.sink.trailers =
                if request { stream.request_trailers.clone() } else { stream.response_trailers.clone() };
            path.sink.complete = true;
        }
    }
}
