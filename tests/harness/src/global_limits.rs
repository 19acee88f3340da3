//! The global-limit layout (`envoy/sluice-ratelimit.yaml`): the chain of `envoy/sluice.yaml` plus
//! Envoy's global rate limit, so that every Envoy of a fleet charges one shared token budget kept
//! by a rate-limit service (README.md, "Token limits across many Envoys"). `make configs` writes
//! that file below its header comment from the chain and the [`ADDITIONS`] ([`layout_body`]);
//! their text is kept here and nowhere else, every other line is the chain's.
//!
//! Each addition goes after an anchor in the chain: whole lines that must be there exactly once,
//! and the block below the last of them (the lines indented deeper). When `envoy/sluice.yaml`
//! changes shape so that an anchor is gone or not one any more, `make configs` and the freshness
//! test fail naming it: an addition is never put where it may not belong.

use crate::configs::CHAIN;

/// One addition to the chain.
pub struct Addition {
    /// What it is, for the messages.
    pub what: &'static str,
    /// Whole lines of the chain (without the last line break), there exactly once: the addition
    /// goes after them and after the block below the last of them.
    pub after: &'static str,
    /// Its lines as the file has them, at their indentation, comments included. The literal
    /// opens with a line break that is not part of it ([`Addition::text`]), so that the lines
    /// stand in the source as in the file; a blank line after that one is (the runtime's).
    text: &'static str,
}

impl Addition {
    /// Its lines.
    pub fn text(&self) -> &'static str {
        self.text.strip_prefix('\n').unwrap_or(self.text)
    }
}

/// What envoy/sluice-ratelimit.yaml adds to the chain, in file order.
pub const ADDITIONS: [Addition; 4] = [
    Addition {
        what: "the runtime flag that lets a descriptor value be a formatter string",
        after: "node:",
        text: r#"

# Rate-limit descriptor values (`generic_key.descriptor_value`) are formatter strings only with
# this flag on: the consumer and model come from filter state (%FILTER_STATE(...)%).
layered_runtime:
  layers:
  - name: static
    static_layer:
      envoy.reloadable_features.enable_formatter_for_ratelimit_action_descriptor_value: true
"#,
    },
    Addition {
        what: "the token charges (the rate-limit filter's config on the virtual host llm, so on \
               each of its routes)",
        after: "            - name: llm\n              domains: [\"*\"]",
        text: r#"
              # The token charges of the global rate-limit filter (below, after token-count). Set
              # here, in the filter's per-route config, because hits_addend with a `format` is
              # only taken from there. Descriptor (consumer, model); routes without a counted
              # request (GET /v1/models, direct responses) have no prompt count, and a
              # descriptor whose hits_addend does not format to a number is not sent.
              typed_per_filter_config:
                envoy.filters.http.ratelimit:
                  "@type": type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimitPerRoute
                  rate_limits:
                  # Request time: the prompt tokens, known exactly before the request leaves.
                  # Over the budget → 429, the request does not go upstream.
                  - actions:
                    - generic_key: &consumer_key { descriptor_key: consumer, descriptor_value: "%FILTER_STATE(wasm.sluice.consumer:PLAIN)%", default_value: anonymous }
                    - generic_key: &model_key { descriptor_key: model, descriptor_value: "%FILTER_STATE(wasm.sluice.model:PLAIN)%", default_value: unknown }
                    hits_addend: { format: "%FILTER_STATE(wasm.sluice.prompt_tokens:PLAIN)%" }
                  # Stream done: the completion tokens (token-count writes them when the answer
                  # ends, before Envoy destroys the stream's filters and this call is made).
                  - actions:
                    - generic_key: *consumer_key
                    - generic_key: *model_key
                    - generic_key: { descriptor_key: charge, descriptor_value: stream_done }
                    apply_on_stream_done: true
                    hits_addend: { format: "%FILTER_STATE(wasm.sluice.completion_tokens:PLAIN)%" }
"#,
    },
    Addition {
        what: "Envoy's global rate-limit filter (right after token-count)",
        after: "          - name: sluice.token_count",
        text: r#"
          # 5b. Envoy's global rate limit: after token-count, which wrote the prompt count to
          #     filter state before this filter sees the request (token-count holds the headers
          #     until the body is whole). The descriptors are the per-route config above. A
          #     service that cannot be reached lets the request through (failure_mode_deny:
          #     false); a budget spent answers 429, shaped as JSON by local_reply_config.
          - name: envoy.filters.http.ratelimit
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimit
              domain: sluice
              timeout: 1s
              failure_mode_deny: false
              enable_x_ratelimit_headers: DRAFT_VERSION_03
              rate_limit_service:
                transport_api_version: V3
                grpc_service:
                  envoy_grpc: { cluster_name: sluice_ratelimit }
"#,
    },
    Addition {
        what: "the rate-limit service's cluster",
        after: "  - name: mock",
        text: r#"
  # The rate-limit service (gRPC over HTTP/2): tools/sluice-ratelimit in the tests; in production
  # envoyproxy/ratelimit or Limitador (README.md, "Token limits across many Envoys").
  - name: sluice_ratelimit
    type: STATIC
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: { http2_protocol_options: {} }
    load_assignment:
      cluster_name: sluice_ratelimit
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: ${RATELIMIT_PORT} } } }
"#,
    },
];

/// envoy/sluice-ratelimit.yaml below its header comment (`make configs` writes it): `chain`, the
/// text of envoy/sluice.yaml from `node:` on, with each of the [`ADDITIONS`] after its anchor.
/// Every other line is the chain's.
pub fn layout_body(chain: &str) -> crate::Result<String> {
    let mut places = Vec::with_capacity(ADDITIONS.len());
    for addition in &ADDITIONS {
        places.push((place(chain, addition)?, addition));
    }
    // Stable: two additions at one place keep their order.
    places.sort_by_key(|(at, _)| *at);
    let added: usize = ADDITIONS.iter().map(|a| a.text.len()).sum();
    let mut out = String::with_capacity(chain.len() + added);
    let mut from = 0;
    for (at, addition) in places {
        out.push_str(chain.get(from..at).unwrap_or_default());
        out.push_str(addition.text());
        from = at;
    }
    out.push_str(chain.get(from..).unwrap_or_default());
    Ok(out)
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

/// Where in `chain` (a byte offset, at a line start) `addition` goes: past its anchor, the one
/// place the chain has those whole lines, and past the block below the anchor's last line (the
/// lines indented deeper, blank lines between them included).
fn place(chain: &str, addition: &Addition) -> crate::Result<usize> {
    let anchor = format!("{}\n", addition.after);
    let found: Vec<usize> = chain
        .match_indices(&anchor)
        .map(|(at, _)| at)
        .filter(|&at| at == 0 || chain.get(..at).is_some_and(|before| before.ends_with('\n')))
        .collect();
    let &[at] = found.as_slice() else {
        return Err(format!(
            "{CHAIN} has the anchor {:?} (whole lines) {} times, not once: it places {} in \
             envoy/sluice-ratelimit.yaml; give it an anchor that fits the chain now \
             (tests/harness/src/global_limits.rs)",
            addition.after,
            found.len(),
            addition.what
        ));
    };
    let at = at + anchor.len();
    let last = addition.after.lines().last().unwrap_or_default();
    let (mut end, mut next) = (at, at);
    for line in chain.get(at..).unwrap_or_default().split_inclusive('\n') {
        next += line.len();
        if line.trim().is_empty() {
            continue;
        }
        if indent(line) <= indent(last) {
            break;
        }
        end = next;
    }
    Ok(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A chain with every anchor, each with a block below it (a blank line inside one).
    const CHAIN_TEXT: &str = "node:\n  id: sluice\n\n  cluster: sluice\n\nstats_config: {}\nstatic_resources:\n  listeners:\n  - name: sluice\n    routes:\n            - name: llm\n              domains: [\"*\"]\n              routes: []\n            - name: fallback\n              domains: [\"*\"]\n          http_filters:\n          # 5. token-count\n          - name: sluice.token_count\n            typed_config:\n              x: 1\n          # 6.\n          - name: sluice.key_injection.inject\n  clusters:\n  - name: mock\n    type: STATIC\n";

    #[test]
    fn each_addition_goes_after_its_anchor_and_its_block() {
        let out = layout_body(CHAIN_TEXT).unwrap();
        let [runtime, limits, filter, cluster] = &ADDITIONS;
        let want = format!(
            "node:\n  id: sluice\n\n  cluster: sluice\n{}\nstats_config: {{}}\nstatic_resources:\n  listeners:\n  - name: sluice\n    routes:\n            - name: llm\n              domains: [\"*\"]\n{}              routes: []\n            - name: fallback\n              domains: [\"*\"]\n          http_filters:\n          # 5. token-count\n          - name: sluice.token_count\n            typed_config:\n              x: 1\n{}          # 6.\n          - name: sluice.key_injection.inject\n  clusters:\n  - name: mock\n    type: STATIC\n{}",
            runtime.text(),
            limits.text(),
            filter.text(),
            cluster.text()
        );
        assert_eq!(out, want);
        // The runtime stands between two blank lines; each text is whole lines.
        assert!(out.contains("  cluster: sluice\n\n# Rate-limit"), "{out}");
        assert!(
            out.contains("descriptor_value: true\n\nstats_config"),
            "{out}"
        );
        for addition in &ADDITIONS {
            assert!(addition.text().ends_with('\n') && !addition.text().ends_with("\n\n"));
        }
    }

    #[test]
    fn an_anchor_gone_or_repeated_is_named() {
        let gone = CHAIN_TEXT.replace("- name: sluice.token_count", "- name: sluice.token_counter");
        let e = layout_body(&gone).unwrap_err();
        assert!(
            e.contains(
                "envoy/sluice.yaml has the anchor \"          - name: sluice.token_count\" \
                 (whole lines) 0 times, not once"
            ),
            "{e}"
        );
        assert!(e.contains("global rate-limit filter"), "{e}");
        // Not a whole line: not the anchor.
        let indented = CHAIN_TEXT.replace("  - name: mock\n", "   - name: mock\n");
        let e = layout_body(&indented).unwrap_err();
        assert!(
            e.contains("\"  - name: mock\" (whole lines) 0 times"),
            "{e}"
        );
        let twice = CHAIN_TEXT.replace("- name: fallback", "- name: llm");
        let e = layout_body(&twice).unwrap_err();
        assert!(
            e.contains("llm\\n              domains: [\\\"*\\\"]\" (whole lines) 2 times"),
            "{e}"
        );
    }
}
