//! Which credential goes upstream: the `inject` role.

use super::config::KeyInjectionConfig;
use crate::ConfigError;

/// One provider's credentials, secrets resolved.
#[derive(Debug, Clone)]
pub struct Provider {
    pub name: String,
    clusters: Vec<String>,
    pub header: String,
    value_format: String,
    pub extra_headers: Vec<(String, String)>,
    keys: Vec<String>,
    pub cooldown_secs: u64,
}

impl Provider {
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// The credential header's value for key `index`.
    pub fn header_value(&self, index: usize) -> Option<String> {
        let key = self.keys.get(index)?;
        Some(self.value_format.replace("{key}", key))
    }

    /// Picks a key round-robin starting at `start`, skipping keys whose cool-down (Unix
    /// seconds, from `cooled_until`) has not ended. When every key is resting, the one that
    /// becomes free first is used: a request is never refused for want of a rested key.
    pub fn pick_key(
        &self,
        start: usize,
        now_secs: u64,
        cooled_until: impl Fn(usize) -> u64,
    ) -> usize {
        let n = self.keys.len().max(1);
        let mut soonest = (u64::MAX, start % n);
        for step in 0..n {
            let i = (start + step) % n;
            let until = cooled_until(i);
            if until <= now_secs {
                return i;
            }
            if until < soonest.0 {
                soonest = (until, i);
            }
        }
        soonest.1
    }
}

/// The `inject` role's compiled config.
#[derive(Debug, Clone)]
pub struct Injector {
    providers: Vec<Provider>,
    caller_headers: Vec<String>,
}

impl Injector {
    /// Builds from a validated config, reading `env` secrets through `env`. A secret that is
    /// missing or empty is a config error naming the variable.
    pub fn new(
        config: &KeyInjectionConfig,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut providers = Vec::new();
        for (name, p) in &config.providers {
            let mut keys = Vec::new();
            for (i, source) in p.keys.iter().enumerate() {
                let at = format!("$.providers[{name:?}].keys[{i}]");
                let key = match (&source.env, &source.value) {
                    (Some(var), _) => env(var).filter(|v| !v.trim().is_empty()).ok_or_else(|| {
                        ConfigError::new(
                            format!("{at}.env"),
                            format!("environment variable {var} is not set in the VM (vm_config.environment_variables)"),
                        )
                    })?,
                    (None, Some(value)) => value.clone(),
                    (None, None) => return Err(ConfigError::new(at, "no secret")),
                };
                keys.push(key.trim().to_owned());
            }
            providers.push(Provider {
                name: name.clone(),
                clusters: p.clusters.clone(),
                header: p.header.clone(),
                value_format: p.value.clone(),
                extra_headers: p
                    .headers
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                keys,
                cooldown_secs: p.cooldown_seconds,
            });
        }
        Ok(Injector {
            providers,
            caller_headers: config.caller_headers.clone(),
        })
    }

    /// Caller credential headers, removed before injecting.
    pub fn caller_headers(&self) -> &[String] {
        &self.caller_headers
    }

    pub fn providers(&self) -> &[Provider] {
        &self.providers
    }

    pub fn by_name(&self, name: &str) -> Option<usize> {
        self.providers.iter().position(|p| p.name == name)
    }

    pub fn by_cluster(&self, cluster: &str) -> Option<usize> {
        self.providers
            .iter()
            .position(|p| p.clusters.iter().any(|c| c == cluster))
    }

    pub fn get(&self, index: usize) -> Option<&Provider> {
        self.providers.get(index)
    }

    /// Every provider secret, for scrubbing answers.
    pub fn secrets(&self) -> Vec<&str> {
        self.providers
            .iter()
            .flat_map(|p| p.keys.iter().map(String::as_str))
            .collect()
    }
}

/// How long a key rests after a 401/429: the answer's `retry-after` seconds if it has them,
/// else the provider's configured cool-down.
pub fn cooldown_for(provider: &Provider, retry_after: Option<&str>) -> u64 {
    retry_after
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|s| *s > 0)
        .map(|s| s.min(86_400))
        .unwrap_or(provider.cooldown_secs)
}

/// The shared-data key holding a provider's key cool-downs (one read per request).
pub fn cooldown_slot(provider: &str) -> String {
    format!("sluice.key_injection.cooldown.{provider}")
}

/// Cool-down ends per key (Unix seconds), as stored in shared data: comma-separated decimals.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Cooldowns(Vec<u64>);

impl Cooldowns {
    /// Parses the stored text; anything unreadable counts as "not resting".
    pub fn parse(text: Option<&str>) -> Self {
        Cooldowns(
            text.unwrap_or_default()
                .split(',')
                .map(|v| v.trim().parse().unwrap_or(0))
                .collect(),
        )
    }

    pub fn until(&self, index: usize) -> u64 {
        self.0.get(index).copied().unwrap_or(0)
    }

    /// Rests key `index` until `until` (keeps a later end already recorded).
    pub fn rest(&mut self, index: usize, until: u64) {
        if self.0.len() <= index {
            self.0.resize(index + 1, 0);
        }
        if let Some(slot) = self.0.get_mut(index) {
            *slot = (*slot).max(until);
        }
    }

    pub fn encode(&self) -> String {
        self.0
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;
    use crate::parse_config;

    fn injector(env: &'static [(&'static str, &'static str)]) -> Result<Injector, ConfigError> {
        let config: KeyInjectionConfig = parse_config(
            br#"{"role":"inject","providers":{
                "openai":{"clusters":["openai","mock"],"header":"authorization","value":"Bearer {key}",
                          "keys":[{"value":"sk-one"},{"env":"KEY_TWO"},{"value":"sk-three"}]},
                "anthropic":{"clusters":["anthropic"],"header":"x-api-key",
                             "headers":{"anthropic-version":"2023-06-01"},"keys":[{"value":"sk-ant"}]}
            }}"#,
        )
        .unwrap();
        Injector::new(&config, |name| {
            env.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn missing_env_secret_names_the_variable() {
        let err = injector(&[]).unwrap_err();
        assert_eq!(err.path, r#"$.providers["openai"].keys[1].env"#);
        assert!(err.message.contains("KEY_TWO"), "{err}");
        let err = injector(&[("KEY_TWO", " ")]).unwrap_err();
        assert!(err.message.contains("KEY_TWO"));
    }

    #[test]
    fn providers_by_name_and_cluster() {
        let inj = injector(&[("KEY_TWO", "sk-two")]).unwrap();
        let openai = inj.by_cluster("mock").unwrap();
        assert_eq!(inj.by_name("openai"), Some(openai));
        let p = inj.get(openai).unwrap();
        assert_eq!(p.header_value(1).as_deref(), Some("Bearer sk-two"));
        let a = inj.get(inj.by_cluster("anthropic").unwrap()).unwrap();
        assert_eq!(a.header_value(0).as_deref(), Some("sk-ant"));
        assert_eq!(
            a.extra_headers,
            vec![("anthropic-version".into(), "2023-06-01".into())]
        );
        assert_eq!(inj.by_cluster("nope"), None);
        assert_eq!(inj.secrets().len(), 4);
    }

    #[test]
    fn pick_skips_resting_keys_and_falls_back_to_the_soonest() {
        let inj = injector(&[("KEY_TWO", "sk-two")]).unwrap();
        let p = inj.get(inj.by_name("openai").unwrap()).unwrap();
        let now = 1000;
        assert_eq!(p.pick_key(0, now, |_| 0), 0);
        assert_eq!(p.pick_key(4, now, |_| 0), 1, "round-robin wraps");
        assert_eq!(p.pick_key(0, now, |i| if i == 0 { 2000 } else { 0 }), 1);
        assert_eq!(
            p.pick_key(0, now, |i| [3000, 1500, 2000][i]),
            1,
            "all resting: soonest"
        );
    }

    #[test]
    fn cooldowns_round_trip_and_keep_the_later_end() {
        let mut c = Cooldowns::parse(None);
        assert_eq!(c.until(3), 0);
        c.rest(2, 500);
        c.rest(2, 400);
        assert_eq!(c.encode(), "0,0,500");
        let back = Cooldowns::parse(Some(&c.encode()));
        assert_eq!((back.until(2), back.until(0)), (500, 0));
        assert_eq!(Cooldowns::parse(Some("x,7")).until(1), 7);
    }

    #[test]
    fn cooldown_prefers_retry_after() {
        let inj = injector(&[("KEY_TWO", "sk-two")]).unwrap();
        let p = inj.get(0).unwrap();
        assert_eq!(cooldown_for(p, Some("7")), 7);
        assert_eq!(cooldown_for(p, Some("Wed, 21 Oct 2015 07:28:00 GMT")), 60);
        assert_eq!(cooldown_for(p, None), 60);
    }
}
