//! Chat templates (Jinja, as shipped in GGUF `tokenizer.chat_template` or
//! `tokenizer_config.json`), rendered with minijinja plus its Python-compatibility methods.
//!
//! Tools: a template that reads `tools` renders them itself (as Hugging Face's
//! `apply_chat_template(tools=...)` hands them: `{"type": "function", "function": {...}}`, with
//! each call's `arguments` as an object). A template without tools (the default model's) gets
//! the hermes format, the one Qwen2.5 and Hermes models use, written into plain messages:
//! the functions in a system message inside `<tools></tools>`, each earlier call as
//! `<tool_call>\n{"name": ..., "arguments": ...}\n</tool_call>` in its assistant message, and
//! tool results as a user message of `<tool_response>` blocks. The model answers calls in the
//! same format, which the gateway parses back (and the tool grammar enforces).

use minijinja::{context, Environment, ErrorKind};
use serde_json::{json, Value};

use crate::error::{EngineError, Result};
pub use protocol::{ChatMessage, ToolCall, ToolDefinition};

/// A compiled chat template with the special token strings it may refer to.
pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
    /// Whether the template renders `tools` itself.
    native_tools: bool,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate").finish_non_exhaustive()
    }
}

impl ChatTemplate {
    pub fn new(source: &str, bos_token: &str, eos_token: &str) -> Result<Self> {
        let mut env = Environment::new();
        minijinja_contrib::add_to_environment(&mut env);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |msg: String| -> std::result::Result<String, minijinja::Error> {
                Err(minijinja::Error::new(ErrorKind::InvalidOperation, msg))
            },
        );
        env.add_template_owned("chat", source.to_string())
            .map_err(|e| EngineError::ChatTemplate(format!("does not compile: {e}")))?;
        let native_tools = env
            .get_template("chat")
            .map(|t| t.undeclared_variables(false).contains("tools"))
            .unwrap_or(false);
        Ok(Self {
            env,
            bos_token: bos_token.to_string(),
            eos_token: eos_token.to_string(),
            native_tools,
        })
    }

    /// Whether the template renders tools itself (else they take the hermes format).
    pub fn native_tools(&self) -> bool {
        self.native_tools
    }

    /// Renders `messages`, ending with the assistant's turn opener when `add_generation_prompt`.
    pub fn render(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> Result<String> {
        self.render_with_tools(messages, &[], add_generation_prompt)
    }

    /// Renders `messages` with the functions the model may call (none: `tools` is left
    /// undefined, as Hugging Face leaves it).
    pub fn render_with_tools(
        &self,
        messages: &[ChatMessage],
        tools: &[ToolDefinition],
        add_generation_prompt: bool,
    ) -> Result<String> {
        let template = self
            .env
            .get_template("chat")
            .map_err(|e| EngineError::ChatTemplate(e.to_string()))?;
        let rendered = if self.native_tools {
            let messages: Vec<Value> = messages.iter().map(native_message).collect();
            let tools: Option<Vec<Value>> =
                (!tools.is_empty()).then(|| tools.iter().map(tool_value).collect());
            template.render(context! {
                messages => messages,
                tools => tools,
                add_generation_prompt => add_generation_prompt,
                bos_token => self.bos_token,
                eos_token => self.eos_token,
            })
        } else {
            template.render(context! {
                messages => hermes_messages(messages, tools),
                add_generation_prompt => add_generation_prompt,
                bos_token => self.bos_token,
                eos_token => self.eos_token,
            })
        };
        rendered.map_err(|e| EngineError::ChatTemplate(format!("rendering failed: {e}")))
    }
}

/// A tool as Hugging Face templates take it.
fn tool_value(tool: &ToolDefinition) -> Value {
    let mut function = json!({"name": tool.name});
    if let Some(description) = &tool.description {
        function["description"] = json!(description);
    }
    function["parameters"] = tool.parameters.clone();
    json!({"type": "function", "function": function})
}

/// A call's arguments as templates take them: the object, when the text is JSON.
fn arguments_value(arguments: &str) -> Value {
    serde_json::from_str(arguments).unwrap_or_else(|_| Value::String(arguments.to_owned()))
}

/// A message as a template with its own tools support takes it.
fn native_message(m: &ChatMessage) -> Value {
    let mut value = json!({"role": m.role, "content": m.content});
    if !m.tool_calls.is_empty() {
        value["tool_calls"] = m
            .tool_calls
            .iter()
            .map(|c| {
                json!({
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.function.name, "arguments": arguments_value(&c.function.arguments)},
                })
            })
            .collect();
    }
    if let Some(id) = &m.tool_call_id {
        value["tool_call_id"] = json!(id);
    }
    value
}

/// How a call is written in the hermes format (and how the model is asked to write one).
fn hermes_call(name: &str, arguments: &str) -> String {
    let name = serde_json::to_string(name).unwrap_or_default();
    format!("<tool_call>\n{{\"name\": {name}, \"arguments\": {arguments}}}\n</tool_call>")
}

/// The system text that offers `tools` in the hermes format.
fn hermes_tools_prompt(tools: &[ToolDefinition]) -> String {
    let mut text = String::from(
        "You may call one or more functions to help with the user's request. The functions \
         are listed as JSON signatures inside <tools></tools>:\n<tools>",
    );
    for tool in tools {
        text.push('\n');
        text.push_str(&tool_value(tool).to_string());
    }
    text.push_str(
        "\n</tools>\n\nTo call a function, answer with a JSON object holding its name and its \
         arguments inside <tool_call></tool_call> tags, one block per call:\n<tool_call>\n\
         {\"name\": <function-name>, \"arguments\": <arguments-json-object>}\n</tool_call>",
    );
    text
}

/// `messages` in plain roles with tools, calls and results written in the hermes format.
fn hermes_messages(messages: &[ChatMessage], tools: &[ToolDefinition]) -> Vec<ChatMessage> {
    let mut out: Vec<ChatMessage> = Vec::with_capacity(messages.len() + 1);
    if !tools.is_empty() {
        let offer = hermes_tools_prompt(tools);
        match messages.first() {
            Some(first) if first.role == "system" => out.push(ChatMessage::new(
                "system",
                format!("{}\n\n{offer}", first.content),
            )),
            _ => out.push(ChatMessage::new("system", offer)),
        }
    }
    let skip =
        usize::from(!tools.is_empty() && messages.first().is_some_and(|m| m.role == "system"));
    let mut previous_was_tool = false;
    for m in &messages[skip..] {
        if m.role == "tool" {
            let block = format!("<tool_response>\n{}\n</tool_response>", m.content);
            match out.last_mut() {
                Some(last) if previous_was_tool => {
                    last.content.push('\n');
                    last.content.push_str(&block);
                }
                _ => out.push(ChatMessage::new("user", block)),
            }
            previous_was_tool = true;
            continue;
        }
        previous_was_tool = false;
        let mut content = m.content.clone();
        for call in &m.tool_calls {
            if !content.is_empty() {
                content.push('\n');
            }
            content.push_str(&hermes_call(&call.function.name, &call.function.arguments));
        }
        out.push(ChatMessage::new(m.role.clone(), content));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_messages_and_generation_prompt() {
        let t = ChatTemplate::new(
            "{% for m in messages %}<{{ m.role }}>{{ m.content.strip() }}\n{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}",
            "<s>",
            "</s>",
        )
        .unwrap();
        let out = t.render(&[ChatMessage::new("user", " hi ")], true).unwrap();
        assert_eq!(out, "<user>hi\n<assistant>");
        let out = t.render(&[ChatMessage::new("user", "hi")], false).unwrap();
        assert_eq!(out, "<user>hi\n");
    }

    #[test]
    fn raise_exception_becomes_an_error() {
        let t = ChatTemplate::new("{{ raise_exception('no system role') }}", "", "").unwrap();
        let err = t.render(&[], true).unwrap_err().to_string();
        assert!(err.contains("no system role"), "{err}");
    }

    fn weather_tool() -> ToolDefinition {
        ToolDefinition {
            name: "get_weather".into(),
            description: Some("Weather of a city".into()),
            parameters: json!({"type": "object", "properties": {"city": {"type": "string"}}}),
        }
    }

    #[test]
    fn templates_without_tools_get_the_hermes_format() {
        let t = ChatTemplate::new(
            "{% for m in messages %}<{{ m.role }}>{{ m.content }}\n{% endfor %}",
            "",
            "",
        )
        .unwrap();
        assert!(!t.native_tools());
        let call = ToolCall::new("call_1", "get_weather", r#"{"city": "Paris"}"#);
        let messages = [
            ChatMessage::new("system", "Be brief."),
            ChatMessage::new("user", "Weather?"),
            ChatMessage {
                role: "assistant".into(),
                tool_calls: vec![call.clone(), ToolCall::new("call_2", "get_weather", "{}")],
                ..ChatMessage::default()
            },
            ChatMessage {
                role: "tool".into(),
                content: "18C".into(),
                tool_call_id: Some("call_1".into()),
                ..ChatMessage::default()
            },
            ChatMessage {
                role: "tool".into(),
                content: "rain".into(),
                tool_call_id: Some("call_2".into()),
                ..ChatMessage::default()
            },
        ];
        let out = t
            .render_with_tools(&messages, &[weather_tool()], false)
            .unwrap();
        let (system, rest) = out.split_once("\n<user>").unwrap();
        assert!(
            system.starts_with("<system>Be brief.\n\nYou may call"),
            "{system}"
        );
        assert!(system.contains(r#"{"type":"function","function":{"name":"get_weather","description":"Weather of a city","parameters":"#), "{system}");
        assert_eq!(
            rest,
            "Weather?\n<assistant><tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {}}\n</tool_call>\n<user><tool_response>\n18C\n</tool_response>\n<tool_response>\nrain\n</tool_response>\n"
        );
        // Without tools, no system text is added, but results still render.
        let out = t.render_with_tools(&messages[1..], &[], false).unwrap();
        assert!(
            out.starts_with("<user>Weather?\n<assistant><tool_call>"),
            "{out}"
        );
    }

    #[test]
    fn templates_with_tools_render_them_themselves() {
        let t = ChatTemplate::new(
            "{% if tools %}{% for t in tools %}[{{ t.function.name }}]{% endfor %}{% endif %}\
             {% for m in messages %}{% if m.tool_calls %}{% for c in m.tool_calls %}\
             {{ c.function.name }}({{ c.function.arguments.city }}){% endfor %}\
             {% else %}<{{ m.role }}>{{ m.content }}{% endif %}{% endfor %}",
            "",
            "",
        )
        .unwrap();
        assert!(t.native_tools());
        let messages = [
            ChatMessage::new("user", "Weather?"),
            ChatMessage {
                role: "assistant".into(),
                tool_calls: vec![ToolCall::new("c", "get_weather", r#"{"city": "Paris"}"#)],
                ..ChatMessage::default()
            },
        ];
        let out = t
            .render_with_tools(&messages, &[weather_tool()], false)
            .unwrap();
        assert_eq!(out, "[get_weather]<user>Weather?get_weather(Paris)");
        let out = t.render_with_tools(&messages[..1], &[], false).unwrap();
        assert_eq!(out, "<user>Weather?");
    }

    #[test]
    fn bad_template_is_refused() {
        assert!(ChatTemplate::new("{% for %}", "", "").is_err());
    }
}
