//! Which API a request is for, from its path.

/// The API a request is for, from its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Chat,
    Completions,
    Embeddings,
    AnthropicMessages,
}

impl Endpoint {
    /// Recognises OpenAI (`/v1/...`), Azure OpenAI (`/openai/deployments/{d}/...`) and
    /// Anthropic paths; anything else is not counted.
    pub fn from_path(path: &str) -> Option<Endpoint> {
        let path = path.split('?').next().unwrap_or(path);
        if path.ends_with("/chat/completions") {
            Some(Endpoint::Chat)
        } else if path.ends_with("/completions") {
            Some(Endpoint::Completions)
        } else if path.ends_with("/embeddings") {
            Some(Endpoint::Embeddings)
        } else if path.ends_with("/v1/messages") {
            Some(Endpoint::AnthropicMessages)
        } else {
            None
        }
    }
}

/// The Azure deployment named in a path, which stands for the model there.
pub fn azure_deployment(path: &str) -> Option<&str> {
    let rest = path
        .split('?')
        .next()?
        .split("/openai/deployments/")
        .nth(1)?;
    rest.split('/').next().filter(|d| !d.is_empty())
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn endpoints_from_paths() {
        assert_eq!(
            Endpoint::from_path("/v1/chat/completions"),
            Some(Endpoint::Chat)
        );
        assert_eq!(
            Endpoint::from_path("/openai/deployments/gpt4o/chat/completions?api-version=x"),
            Some(Endpoint::Chat)
        );
        assert_eq!(
            Endpoint::from_path("/v1/completions"),
            Some(Endpoint::Completions)
        );
        assert_eq!(
            Endpoint::from_path("/v1/embeddings"),
            Some(Endpoint::Embeddings)
        );
        assert_eq!(
            Endpoint::from_path("/v1/messages"),
            Some(Endpoint::AnthropicMessages)
        );
        assert_eq!(Endpoint::from_path("/v1/models"), None);
        assert_eq!(
            azure_deployment("/openai/deployments/my-gpt/chat/completions?api-version=1"),
            Some("my-gpt")
        );
    }
}
