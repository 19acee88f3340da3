//! Logic of the `model-router` filter (its crate under `filters/model-router` is the host glue):
//! pick a target (provider, Envoy cluster, upstream model) for the model a request names.

pub mod config;
pub mod origin;
pub mod prepare;
pub mod route;
