//! Filter configuration: JSON in, a typed and validated struct out, or an error naming the field.
//!
//! A filter's config struct derives `Deserialize` with `#[serde(deny_unknown_fields)]` and
//! implements [`Validate`] next to its definition. [`parse_config`] runs both and reports the
//! JSON path of the first problem, e.g. `$.routes[2].cluster: must not be empty`, so an operator
//! can fix the config from the Envoy log alone.

use serde::de::DeserializeOwned;

/// A config problem and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// JSON path of the offending field: `$`, `$.field`, `$.list[3].field`.
    pub path: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Semantic checks that serde's types cannot express. `path` is the JSON path of `self`.
pub trait Validate {
    fn validate(&self, path: &JsonPath) -> Result<(), ConfigError>;
}

/// A JSON path under construction, for naming fields in validation errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPath(String);

impl JsonPath {
    pub fn root() -> Self {
        JsonPath("$".to_owned())
    }

    pub fn field(&self, name: &str) -> Self {
        JsonPath(format!("{}.{}", self.0, name))
    }

    pub fn index(&self, i: usize) -> Self {
        JsonPath(format!("{}[{}]", self.0, i))
    }

    /// A map entry, quoted so that any key is unambiguous.
    pub fn key(&self, key: &str) -> Self {
        JsonPath(format!("{}[{:?}]", self.0, key))
    }

    pub fn error(&self, message: impl Into<String>) -> ConfigError {
        ConfigError::new(self.0.clone(), message)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Parses and validates a filter config. Empty or all-whitespace input means `{}`.
///
/// Never inlined: V8 under the proxy-wasm host compiles every function with its optimising
/// compiler at load, and the memory that leaves behind in Envoy grows with the largest
/// function; inlined into `on_configure` with the filter's `prepare`, this made the largest
/// (measured: key-injection's RSS 4 MB lower with the two kept apart).
#[inline(never)]
pub fn parse_config<T: DeserializeOwned + Validate>(bytes: &[u8]) -> Result<T, ConfigError> {
    let bytes = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        bytes
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = serde_path(err.path());
        let inner = err.into_inner();
        ConfigError::new(path, strip_position(&inner))
    })?;
    de.end()
        .map_err(|err| ConfigError::new("$", strip_position(&err)))?;
    value.validate(&JsonPath::root())?;
    Ok(value)
}

/// Renders serde_path_to_error's path (`a.b[0].c`, or `.` at the root) as a JSON path.
pub(crate) fn serde_path(path: &serde_path_to_error::Path) -> String {
    let rendered = path.to_string();
    if rendered == "." || rendered.is_empty() {
        "$".to_owned()
    } else if rendered.starts_with('[') {
        format!("${rendered}")
    } else {
        format!("$.{rendered}")
    }
}

/// serde_json appends "at line L column C"; for a one-line config the path says more.
pub(crate) fn strip_position(err: &serde_json::Error) -> String {
    let text = err.to_string();
    match text.rfind(" at line ") {
        Some(at) if err.line() > 0 => text.get(..at).unwrap_or(&text).to_owned(),
        _ => text,
    }
}

/// Checks that a string field is not empty (after trimming).
pub fn require_non_empty(path: &JsonPath, value: &str) -> Result<(), ConfigError> {
    if value.trim().is_empty() {
        Err(path.error("must not be empty"))
    } else {
        Ok(())
    }
}

/// Checks that a number lies within `min..=max`.
pub fn require_range(path: &JsonPath, value: u64, min: u64, max: u64) -> Result<(), ConfigError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(path.error(format!("must be between {min} and {max}, got {value}")))
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Route {
        model: String,
        #[serde(default)]
        weight: u64,
    }

    impl Validate for Route {
        fn validate(&self, path: &JsonPath) -> Result<(), ConfigError> {
            require_non_empty(&path.field("model"), &self.model)?;
            require_range(&path.field("weight"), self.weight, 0, 100)
        }
    }

    #[derive(Debug, Deserialize, PartialEq, Default)]
    #[serde(deny_unknown_fields)]
    struct Cfg {
        #[serde(default)]
        routes: Vec<Route>,
    }

    impl Validate for Cfg {
        fn validate(&self, path: &JsonPath) -> Result<(), ConfigError> {
            let routes = path.field("routes");
            for (i, r) in self.routes.iter().enumerate() {
                r.validate(&routes.index(i))?;
            }
            Ok(())
        }
    }

    #[test]
    fn empty_config_is_defaults() {
        assert_eq!(parse_config::<Cfg>(b"").unwrap(), Cfg::default());
        assert_eq!(parse_config::<Cfg>(b"  \n").unwrap(), Cfg::default());
    }

    #[test]
    fn unknown_field_is_named_with_its_parent_path() {
        let err = parse_config::<Cfg>(br#"{"routes":[{"model":"a","wieght":3}]}"#).unwrap_err();
        assert_eq!(err.path, "$.routes[0].wieght");
        assert!(err.message.contains("unknown field `wieght`"), "{err}");
    }

    #[test]
    fn wrong_type_names_the_field() {
        let err = parse_config::<Cfg>(br#"{"routes":[{"model":"a"},{"model":7}]}"#).unwrap_err();
        assert_eq!(err.path, "$.routes[1].model");
        assert!(err.message.contains("invalid type"), "{err}");
    }

    #[test]
    fn validation_names_the_field() {
        let err = parse_config::<Cfg>(br#"{"routes":[{"model":"a"},{"model":"b","weight":101}]}"#)
            .unwrap_err();
        assert_eq!(err.path, "$.routes[1].weight");
        assert_eq!(err.message, "must be between 0 and 100, got 101");
        let err = parse_config::<Cfg>(br#"{"routes":[{"model":" "}]}"#).unwrap_err();
        assert_eq!(err.to_string(), "$.routes[0].model: must not be empty");
    }

    #[test]
    fn malformed_json_is_an_error_at_root_or_field() {
        let err = parse_config::<Cfg>(b"{\"routes\": [").unwrap_err();
        assert!(err.path.starts_with('$'), "{err}");
        let err = parse_config::<Cfg>(b"{} trailing").unwrap_err();
        assert_eq!(err.path, "$");
    }

    #[test]
    fn map_keys_are_quoted_in_paths() {
        assert_eq!(
            JsonPath::root().field("a").key("x.y").as_str(),
            "$.a[\"x.y\"]"
        );
    }
}
