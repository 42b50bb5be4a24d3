//! Tool calling (Spark's plugins): a request's `tools`, `tool_choice` and
//! `parallel_tool_calls` become the functions the chat template offers and the grammar that
//! binds the calls ([`tool_plan`]); the model's answer in the hermes format
//! (`<tool_call>\n{"name": ..., "arguments": ...}\n</tool_call>`, see `engine::chat_template`)
//! becomes OpenAI's `tool_calls`, whole or as streamed deltas ([`ToolCallParser`],
//! [`AnswerFormat`]). One parser serves the JSON answer, SSE and the WebSocket, so the
//! arguments streamed piece by piece are exactly the non-streamed ones.

use protocol::{
    valid_function_name, FunctionCall, StructuredOutput, ToolAnswer, ToolCall, ToolDefinition,
    MAX_TOOLS,
};
use scheduler::FinishReason;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::wire::{ChatDelta, FunctionCallDelta, ToolCallDelta};
use crate::auth::secret::random_base62;
use crate::error::ApiError;
use crate::inference::ServedModel;

/// A tool the model may call (`tools[]`): a function.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatTool {
    /// Always `function`.
    #[serde(rename = "type")]
    #[schema(pattern = "^function$")]
    pub kind: String,
    pub function: FunctionDefinition,
}

/// A function the model may call.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FunctionDefinition {
    /// 1 to 64 letters, digits, underscores and dashes; unique among the tools.
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub name: String,
    /// What the function does and when to call it (the model reads it).
    pub description: Option<String>,
    /// JSON Schema of the arguments (an object schema). Absent: the function takes no
    /// arguments (`{}`). Always enforced while generating; a keyword Starfire cannot enforce
    /// is a 400 that names it.
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<Value>,
    /// Accepted for compatibility: Starfire always enforces the parameters' schema.
    pub strict: Option<bool>,
}

/// `tool_choice`: `none`, `auto` (the default with tools), `required`, or one function.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum ToolChoice {
    Mode(ToolChoiceMode),
    Function(NamedToolChoice),
}

/// `none`: answer in text; `auto`: text or calls; `required`: one or more calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ToolChoiceMode {
    None,
    Auto,
    Required,
}

/// `{"type": "function", "function": {"name": ...}}`: call this function.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NamedToolChoice {
    /// Always `function`.
    #[serde(rename = "type")]
    #[schema(pattern = "^function$")]
    pub kind: String,
    pub function: NamedFunction,
}

/// The function a named `tool_choice` calls.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NamedFunction {
    /// One of the `tools`' functions.
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub name: String,
}

/// A call in an assistant message of the conversation (as a response gave it).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolCallIn {
    /// 1 to 256 characters.
    #[schema(min_length = 1, max_length = 256)]
    pub id: String,
    /// Always `function`.
    #[serde(rename = "type")]
    #[schema(pattern = "^function$")]
    pub kind: String,
    pub function: FunctionCallIn,
}

/// The function an earlier call called, and its arguments as JSON text.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FunctionCallIn {
    #[schema(min_length = 1)]
    pub name: String,
    pub arguments: String,
}

impl ToolCallIn {
    /// The call as the template takes it; errors name `messages[i].tool_calls[j]...`.
    pub(crate) fn to_call(&self, at: &str) -> Result<ToolCall, ApiError> {
        if self.kind != "function" {
            return Err(ApiError::field(
                &format!("{at}.type"),
                format_args!("'{}' is not supported (function)", self.kind),
            ));
        }
        if self.id.is_empty() || self.id.chars().count() > 256 {
            return Err(ApiError::field(
                &format!("{at}.id"),
                "must be 1 to 256 characters",
            ));
        }
        if self.function.name.is_empty() {
            return Err(ApiError::field(
                &format!("{at}.function.name"),
                "must not be empty",
            ));
        }
        Ok(ToolCall {
            id: self.id.clone(),
            kind: "function".to_owned(),
            function: FunctionCall {
                name: self.function.name.clone(),
                arguments: self.function.arguments.clone(),
            },
        })
    }
}

/// How a chat's output is read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AnswerFormat {
    /// Plain text (no tools offered, or `tool_choice: none`).
    #[default]
    Text,
    /// Text and hermes-format calls, parsed into `tool_calls`. `named`: the request forced
    /// one function, and a choice that called it finishes with `stop` (as OpenAI's do).
    ToolCalls { named: bool },
}

/// What tools do to one chat request.
#[derive(Debug, Default)]
pub(crate) struct ToolPlan {
    /// The functions the template offers the model (none with `tool_choice: none`).
    pub definitions: Vec<ToolDefinition>,
    /// The grammar that binds the calls; replaces the request's structured output.
    pub grammar: Option<StructuredOutput>,
    pub format: AnswerFormat,
}

/// The request's tool fields checked against `model`; `structured` is the request's own
/// structured output (a JSON one becomes the text branch of `auto`).
pub(crate) fn tool_plan(
    tools: Option<&[ChatTool]>,
    choice: Option<&ToolChoice>,
    parallel: Option<bool>,
    structured: Option<&(StructuredOutput, &'static str)>,
    model: &dyn ServedModel,
) -> Result<ToolPlan, ApiError> {
    let tools = tools.unwrap_or_default();
    if tools.is_empty() {
        if choice.is_some() {
            return Err(ApiError::field(
                "tool_choice",
                "is only allowed when `tools` are given",
            ));
        }
        if parallel.is_some() {
            return Err(ApiError::field(
                "parallel_tool_calls",
                "is only allowed when `tools` are given",
            ));
        }
        return Ok(ToolPlan::default());
    }
    let definitions = tool_definitions(tools)?;
    let answer = match choice {
        None | Some(ToolChoice::Mode(ToolChoiceMode::Auto)) => match structured {
            None => ToolAnswer::Auto,
            Some((StructuredOutput::JsonObject, _)) => ToolAnswer::AutoJson {
                schema: json!({"type": "object"}),
            },
            Some((StructuredOutput::JsonSchema { schema }, _)) => ToolAnswer::AutoJson {
                schema: schema.clone(),
            },
            Some((_, field)) => {
                return Err(ApiError::field(
                    field,
                    "cannot be combined with `tools` (a JSON `response_format` can)",
                ))
            }
        },
        Some(ToolChoice::Mode(ToolChoiceMode::None)) => {
            return Ok(ToolPlan::default());
        }
        Some(ToolChoice::Mode(ToolChoiceMode::Required)) => ToolAnswer::Required,
        Some(ToolChoice::Function(named)) => {
            if named.kind != "function" {
                return Err(ApiError::field(
                    "tool_choice.type",
                    format_args!("'{}' is not supported (function)", named.kind),
                ));
            }
            if !definitions.iter().any(|d| d.name == named.function.name) {
                return Err(ApiError::field(
                    "tool_choice.function.name",
                    format_args!("'{}' is not one of the tools", named.function.name),
                ));
            }
            let name = named.function.name.clone();
            ToolAnswer::Named { name }
        }
    };
    let named = matches!(answer, ToolAnswer::Named { .. });
    let parallel = parallel.unwrap_or(true) && !named;
    // Every function, with its description: an upstream that takes tools itself shows them
    // all to its model (as a template here does), whatever the choice.
    let grammar = StructuredOutput::ToolCalls {
        functions: definitions.clone(),
        answer,
        parallel,
    };
    // One compile for all the functions (kept, so the sampling parameters' check of the same
    // grammar is a lookup); only when it fails is each schema compiled, to name the culprit.
    if let Err(err) = model.check_structured(&grammar, "tools") {
        for (i, d) in definitions.iter().enumerate() {
            let schema = d.parameters.clone();
            let field = format!("tools[{i}].function.parameters");
            model.check_structured(&StructuredOutput::JsonSchema { schema }, &field)?;
        }
        return Err(err.into());
    }
    Ok(ToolPlan {
        definitions,
        grammar: Some(grammar),
        format: AnswerFormat::ToolCalls { named },
    })
}

/// The functions of `tools` as the template takes them, each checked (its type, a unique
/// valid name, an object schema); errors name `tools[i]...`.
pub(crate) fn tool_definitions(tools: &[ChatTool]) -> Result<Vec<ToolDefinition>, ApiError> {
    if tools.len() > MAX_TOOLS {
        return Err(ApiError::field(
            "tools",
            format_args!("give at most {MAX_TOOLS} tools"),
        ));
    }
    let mut definitions: Vec<ToolDefinition> = Vec::with_capacity(tools.len());
    for (i, tool) in tools.iter().enumerate() {
        if tool.kind != "function" {
            return Err(ApiError::field(
                &format!("tools[{i}].type"),
                format_args!("'{}' is not supported (function)", tool.kind),
            ));
        }
        let f = &tool.function;
        if !valid_function_name(&f.name) {
            return Err(ApiError::field(
                &format!("tools[{i}].function.name"),
                "must be 1 to 64 letters, digits, underscores or dashes",
            ));
        }
        if definitions.iter().any(|d| d.name == f.name) {
            return Err(ApiError::field(
                &format!("tools[{i}].function.name"),
                format_args!("'{}' is already the name of another tool", f.name),
            ));
        }
        let parameters = match &f.parameters {
            None => json!({"type": "object", "properties": {}, "additionalProperties": false}),
            Some(p @ Value::Object(_)) => p.clone(),
            Some(_) => {
                return Err(ApiError::field(
                    &format!("tools[{i}].function.parameters"),
                    "must be a JSON Schema object",
                ))
            }
        };
        definitions.push(ToolDefinition {
            name: f.name.clone(),
            description: f.description.clone(),
            parameters,
        });
    }
    Ok(definitions)
}

const OPEN: &str = "<tool_call>";
const CLOSE: &str = "</tool_call>";

/// What a piece of a choice's text turns into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolEvent {
    /// Text of the answer.
    Content(String),
    /// A call begins: its position among the choice's calls, its id and its function.
    CallStart {
        index: usize,
        id: String,
        name: String,
    },
    /// More of call `index`'s arguments (JSON text).
    Arguments { index: usize, text: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Answer text; `buf` holds trailing whitespace and what may be the start of `<tool_call>`.
    Text,
    /// In a call before its arguments; `buf` holds the call so far.
    Head,
    /// In the arguments' JSON value.
    Arguments,
    /// After the arguments, until `</tool_call>`.
    Tail,
    /// A call whose head is not `{"name": ..., "arguments": ...`: read whole at `</tool_call>`.
    Raw,
}

/// Where a JSON value being streamed ends.
#[derive(Debug, Default, Clone, Copy)]
struct ValueScan {
    started: bool,
    depth: usize,
    in_string: bool,
    escaped: bool,
    scalar: bool,
}

impl ValueScan {
    /// Scans `s`: the byte range of `s` that belongs to the value (leading whitespace
    /// skipped), and whether the value ended in it.
    fn scan(&mut self, s: &str) -> (usize, usize, bool) {
        let mut start = 0;
        for (i, c) in s.char_indices() {
            if !self.started {
                if c.is_whitespace() {
                    start = i + c.len_utf8();
                    continue;
                }
                self.started = true;
                match c {
                    '{' | '[' => self.depth = 1,
                    '"' => self.in_string = true,
                    _ => self.scalar = true,
                }
                continue;
            }
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if c == '\\' {
                    self.escaped = true;
                } else if c == '"' {
                    self.in_string = false;
                    if self.depth == 0 {
                        return (start, i + 1, true);
                    }
                }
            } else if self.scalar {
                if matches!(c, ',' | '}' | ']') || c.is_whitespace() {
                    return (start, i, true);
                }
            } else {
                match c {
                    '{' | '[' => self.depth += 1,
                    '}' | ']' => {
                        self.depth -= 1;
                        if self.depth == 0 {
                            return (start, i + 1, true);
                        }
                    }
                    '"' => self.in_string = true,
                    _ => {}
                }
            }
        }
        (start.min(s.len()), s.len(), false)
    }
}

/// The head of a call, `{"name": "<name>", "arguments": `, read from the start of `s`.
enum Head {
    /// `s` may still become a head.
    Incomplete,
    /// `s` is not a head.
    Invalid,
    /// The function's name, and where the arguments begin in `s`.
    Done { name: String, end: usize },
}

fn read_head(s: &str) -> Head {
    struct Cursor<'a> {
        s: &'a str,
        at: usize,
    }
    enum Step {
        Ok,
        More,
        Bad,
    }
    impl Cursor<'_> {
        fn ws(&mut self) {
            let rest = &self.s[self.at..];
            self.at += rest.len() - rest.trim_start().len();
        }
        fn byte(&mut self, b: u8) -> Step {
            self.ws();
            match self.s.as_bytes().get(self.at) {
                None => Step::More,
                Some(&c) if c == b => {
                    self.at += 1;
                    Step::Ok
                }
                Some(_) => Step::Bad,
            }
        }
        /// A JSON string: its value, or what stopped it.
        fn string(&mut self) -> Result<String, Step> {
            match self.byte(b'"') {
                Step::Ok => {}
                other => return Err(other),
            }
            let start = self.at - 1;
            let mut escaped = false;
            for (i, c) in self.s[self.at..].char_indices() {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == '"' {
                    let end = self.at + i + 1;
                    self.at = end;
                    return serde_json::from_str(&self.s[start..end]).map_err(|_| Step::Bad);
                }
            }
            Err(Step::More)
        }
    }
    let mut c = Cursor { s, at: 0 };
    macro_rules! step {
        ($e:expr) => {
            match $e {
                Step::Ok => {}
                Step::More => return Head::Incomplete,
                Step::Bad => return Head::Invalid,
            }
        };
    }
    macro_rules! string {
        () => {
            match c.string() {
                Ok(s) => s,
                Err(Step::More) => return Head::Incomplete,
                Err(_) => return Head::Invalid,
            }
        };
    }
    step!(c.byte(b'{'));
    if string!() != "name" {
        return Head::Invalid;
    }
    step!(c.byte(b':'));
    let name = string!();
    step!(c.byte(b','));
    if string!() != "arguments" {
        return Head::Invalid;
    }
    step!(c.byte(b':'));
    Head::Done { name, end: c.at }
}

/// The length of the longest suffix of `s` that begins `OPEN` (without being all of it).
fn partial_open(s: &str) -> usize {
    (1..OPEN.len().min(s.len() + 1))
        .rev()
        .find(|&n| s.is_char_boundary(s.len() - n) && OPEN.starts_with(&s[s.len() - n..]))
        .unwrap_or(0)
}

/// Reads one choice's output, piece by piece, into answer text and tool calls. The events
/// depend only on the whole text, never on how it was cut into pieces.
#[derive(Debug)]
pub struct ToolCallParser {
    state: State,
    buf: String,
    scan: ValueScan,
    calls: usize,
}

impl Default for ToolCallParser {
    fn default() -> Self {
        Self::new()
    }
}

impl ToolCallParser {
    pub fn new() -> Self {
        Self {
            state: State::Text,
            buf: String::new(),
            scan: ValueScan::default(),
            calls: 0,
        }
    }

    /// Calls begun so far.
    pub fn calls(&self) -> usize {
        self.calls
    }

    fn start_call(&mut self, name: String, out: &mut Vec<ToolEvent>) -> usize {
        let index = self.calls;
        self.calls += 1;
        out.push(ToolEvent::CallStart {
            index,
            id: format!("call_{}", random_base62(24)),
            name,
        });
        index
    }

    /// The events of `text`, the next piece of the output.
    pub fn push(&mut self, text: &str, out: &mut Vec<ToolEvent>) {
        self.buf.push_str(text);
        loop {
            match self.state {
                State::Text => {
                    if let Some(at) = self.buf.find(OPEN) {
                        let before = self.buf[..at].trim_end();
                        if !before.is_empty() {
                            out.push(ToolEvent::Content(before.to_owned()));
                        }
                        self.buf.drain(..at + OPEN.len());
                        self.state = State::Head;
                        continue;
                    }
                    let keep = partial_open(&self.buf);
                    let settled = self.buf[..self.buf.len() - keep].trim_end().len();
                    if settled > 0 {
                        out.push(ToolEvent::Content(self.buf[..settled].to_owned()));
                        self.buf.drain(..settled);
                    }
                    return;
                }
                State::Head => match read_head(&self.buf) {
                    Head::Incomplete => return,
                    Head::Invalid => self.state = State::Raw,
                    Head::Done { name, end } => {
                        self.start_call(name, out);
                        self.buf.drain(..end);
                        self.scan = ValueScan::default();
                        self.state = State::Arguments;
                    }
                },
                State::Arguments => {
                    let (start, end, done) = self.scan.scan(&self.buf);
                    if end > start {
                        out.push(ToolEvent::Arguments {
                            index: self.calls - 1,
                            text: self.buf[start..end].to_owned(),
                        });
                    }
                    self.buf.drain(..end);
                    if !done {
                        return;
                    }
                    self.state = State::Tail;
                }
                State::Tail | State::Raw => {
                    let Some(at) = self.buf.find(CLOSE) else {
                        return;
                    };
                    if self.state == State::Raw {
                        self.raw_call(at, out);
                    }
                    self.buf.drain(..at + CLOSE.len());
                    self.state = State::Text;
                }
            }
        }
    }

    /// A complete call whose head was not in the usual order: its JSON read whole.
    fn raw_call(&mut self, end: usize, out: &mut Vec<ToolEvent>) {
        let body = &self.buf[..end];
        let parsed: Option<(String, String)> =
            serde_json::from_str::<Value>(body).ok().and_then(|v| {
                let name = v.get("name")?.as_str()?.to_owned();
                let arguments = match v.get("arguments")? {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                Some((name, arguments))
            });
        match parsed {
            Some((name, text)) => {
                let index = self.start_call(name, out);
                out.push(ToolEvent::Arguments { index, text });
            }
            None => out.push(ToolEvent::Content(format!("{OPEN}{body}{CLOSE}"))),
        }
    }

    /// The events of the end of the output: held-back text, or an unfinished call's head.
    pub fn finish(&mut self, out: &mut Vec<ToolEvent>) {
        let rest = std::mem::take(&mut self.buf);
        match self.state {
            State::Text => {
                // Whitespace after the last call is not an answer.
                let after_calls = self.calls > 0 && rest.trim().is_empty();
                if !rest.is_empty() && !after_calls {
                    out.push(ToolEvent::Content(rest));
                }
            }
            State::Head | State::Raw => out.push(ToolEvent::Content(format!("{OPEN}{rest}"))),
            State::Arguments | State::Tail => {}
        }
        self.state = State::Text;
    }
}

/// The answer of one choice read whole: its text (None when it only made calls) and calls.
pub(crate) fn read_answer(text: &str) -> (Option<String>, Vec<ToolCall>) {
    let mut parser = ToolCallParser::new();
    let mut events = Vec::new();
    parser.push(text, &mut events);
    parser.finish(&mut events);
    let mut content = String::new();
    let mut calls: Vec<ToolCall> = Vec::new();
    for event in events {
        match event {
            ToolEvent::Content(t) => content.push_str(&t),
            ToolEvent::CallStart { id, name, .. } => calls.push(ToolCall::new(id, name, "")),
            ToolEvent::Arguments { index, text } => {
                if let Some(call) = calls.get_mut(index) {
                    call.function.arguments.push_str(&text);
                }
            }
        }
    }
    let content = (!content.is_empty() || calls.is_empty()).then_some(content);
    (content, calls)
}

impl AnswerFormat {
    /// The finish reason OpenAI gives a choice that ended for `reason` having made `calls`
    /// calls: `tool_calls` when it called (`stop` for a named choice).
    pub fn finish_reason(self, reason: &FinishReason, calls: usize) -> &'static str {
        match (self, reason) {
            (AnswerFormat::ToolCalls { named: false }, FinishReason::Stop) if calls > 0 => {
                "tool_calls"
            }
            _ => reason.as_str(),
        }
    }
}

/// Turns the streamed text of a chat's choices into `ChatDelta`s: content as it comes, and
/// with tools, each call's id, type and name in its first delta and argument text after.
#[derive(Debug)]
pub(crate) struct DeltaReader {
    format: AnswerFormat,
    parsers: Vec<ToolCallParser>,
}

impl DeltaReader {
    pub fn new(format: AnswerFormat, n: usize) -> Self {
        let parsers = match format {
            AnswerFormat::Text => Vec::new(),
            AnswerFormat::ToolCalls { .. } => (0..n).map(|_| ToolCallParser::new()).collect(),
        };
        Self { format, parsers }
    }

    /// The deltas of choice `index`'s new `text` (and of its end, when `finished`); at least
    /// one (empty content) when the piece `carries_logprobs`, so that they have a delta to ride.
    pub fn deltas(
        &mut self,
        index: usize,
        text: String,
        finished: bool,
        carries_logprobs: bool,
    ) -> Vec<ChatDelta> {
        let mut out = self.read(index, text, finished);
        if out.is_empty() && carries_logprobs {
            out.push(ChatDelta::content(String::new()));
        }
        out
    }

    fn read(&mut self, index: usize, text: String, finished: bool) -> Vec<ChatDelta> {
        let Some(parser) = self.parsers.get_mut(index) else {
            return if text.is_empty() {
                Vec::new()
            } else {
                vec![ChatDelta::content(text)]
            };
        };
        let mut events = Vec::new();
        parser.push(&text, &mut events);
        if finished {
            parser.finish(&mut events);
        }
        events
            .into_iter()
            .map(|e| match e {
                ToolEvent::Content(text) => ChatDelta::content(text),
                ToolEvent::CallStart { index, id, name } => ChatDelta::tool_call(ToolCallDelta {
                    index,
                    id: Some(id),
                    kind: Some("function"),
                    function: FunctionCallDelta {
                        name: Some(name),
                        arguments: Some(String::new()),
                    },
                }),
                ToolEvent::Arguments { index, text } => ChatDelta::tool_call(ToolCallDelta {
                    index,
                    id: None,
                    kind: None,
                    function: FunctionCallDelta {
                        name: None,
                        arguments: Some(text),
                    },
                }),
            })
            .collect()
    }

    /// Choice `index`'s finish reason for OpenAI.
    pub fn finish_reason(&self, index: usize, reason: &FinishReason) -> &'static str {
        let calls = self.parsers.get(index).map_or(0, ToolCallParser::calls);
        self.format.finish_reason(reason, calls)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events_of(pieces: &[&str]) -> Vec<ToolEvent> {
        let mut p = ToolCallParser::new();
        let mut out = Vec::new();
        for piece in pieces {
            p.push(piece, &mut out);
        }
        p.finish(&mut out);
        out
    }

    /// Events with ids blanked and neighbouring pieces of one kind joined.
    fn merged(events: Vec<ToolEvent>) -> Vec<ToolEvent> {
        let mut out: Vec<ToolEvent> = Vec::new();
        for e in events {
            match (out.last_mut(), e) {
                (Some(ToolEvent::Content(a)), ToolEvent::Content(b)) => a.push_str(&b),
                (
                    Some(ToolEvent::Arguments { index: i, text: a }),
                    ToolEvent::Arguments { index, text },
                ) if *i == index => a.push_str(&text),
                (_, ToolEvent::CallStart { index, name, .. }) => out.push(ToolEvent::CallStart {
                    index,
                    id: String::new(),
                    name,
                }),
                (_, e) => out.push(e),
            }
        }
        out
    }

    fn every_split(text: &str) -> Vec<Vec<ToolEvent>> {
        let cuts: Vec<usize> = (0..=text.len())
            .filter(|&i| text.is_char_boundary(i))
            .collect();
        let mut all = vec![merged(events_of(&[text]))];
        for &a in &cuts {
            for &b in cuts.iter().filter(|&&b| b >= a) {
                all.push(merged(events_of(&[&text[..a], &text[a..b], &text[b..]])));
            }
        }
        all
    }

    fn start(index: usize, name: &str) -> ToolEvent {
        ToolEvent::CallStart {
            index,
            id: String::new(),
            name: name.into(),
        }
    }

    fn args(index: usize, text: &str) -> ToolEvent {
        ToolEvent::Arguments {
            index,
            text: text.into(),
        }
    }

    #[test]
    fn calls_and_text_read_the_same_however_the_text_is_cut() {
        let text = "Let me look.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Pa}ris \\\"x\\\"\", \"days\": [1, {\"a\": 2}]}}\n</tool_call>\n<tool_call>\n{\"name\": \"now\", \"arguments\": {}}\n</tool_call>";
        let want = vec![
            ToolEvent::Content("Let me look.".into()),
            start(0, "get_weather"),
            args(
                0,
                "{\"city\": \"Pa}ris \\\"x\\\"\", \"days\": [1, {\"a\": 2}]}",
            ),
            start(1, "now"),
            args(1, "{}"),
        ];
        for events in every_split(text) {
            assert_eq!(events, want);
        }
    }

    #[test]
    fn plain_text_passes_whole() {
        for text in ["Hello <b>world</b>  \n", "a <tool_", "x < y", "  "] {
            for events in every_split(text) {
                assert_eq!(events, vec![ToolEvent::Content(text.into())], "{text:?}");
            }
        }
        assert_eq!(events_of(&[""]), vec![]);
    }

    #[test]
    fn unusual_and_unfinished_calls() {
        // Arguments first: read whole at the end of the block.
        let text = "<tool_call>{\"arguments\": {\"a\": 1}, \"name\": \"f\"}</tool_call>";
        assert_eq!(
            merged(events_of(&[text])),
            vec![start(0, "f"), args(0, "{\"a\":1}")]
        );
        // Not a call at all: kept as text.
        let text = "<tool_call>oops</tool_call> done";
        assert_eq!(
            merged(events_of(&[text])),
            vec![ToolEvent::Content(
                "<tool_call>oops</tool_call> done".into()
            )]
        );
        // Cut off (max_tokens) inside the arguments: what came is the call's.
        let text = "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": [1, 2";
        assert_eq!(
            merged(events_of(&[text])),
            vec![start(0, "f"), args(0, "{\"a\": [1, 2")]
        );
        // Cut off in the head: text.
        let text = "<tool_call>\n{\"na";
        assert_eq!(
            merged(events_of(&[text])),
            vec![ToolEvent::Content(text.into())]
        );
    }

    #[test]
    fn read_answer_gives_null_content_with_calls() {
        let (content, calls) =
            read_answer("<tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n</tool_call>");
        assert_eq!(content, None);
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].function.name, "f");
        assert_eq!(calls[0].function.arguments, "{}");
        assert!(calls[0].id.starts_with("call_"));
        let (content, calls) = read_answer("just text");
        assert_eq!(content.as_deref(), Some("just text"));
        assert!(calls.is_empty());
    }

    #[test]
    fn finish_reasons_follow_openai() {
        let auto = AnswerFormat::ToolCalls { named: false };
        let named = AnswerFormat::ToolCalls { named: true };
        assert_eq!(auto.finish_reason(&FinishReason::Stop, 1), "tool_calls");
        assert_eq!(auto.finish_reason(&FinishReason::Stop, 0), "stop");
        assert_eq!(auto.finish_reason(&FinishReason::Length, 1), "length");
        assert_eq!(named.finish_reason(&FinishReason::Stop, 1), "stop");
        assert_eq!(
            AnswerFormat::Text.finish_reason(&FinishReason::Stop, 0),
            "stop"
        );
    }
}
