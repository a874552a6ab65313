//! afxdp-router control plane: the YAML config (schema, validation,
//! compilation to dataplane tables), `routerd` and `routerctl`.
pub mod cli;
pub mod cli_docs;
pub mod config;
pub mod ctl;
pub mod explain;
pub mod nft;
pub mod packet_spec;
pub mod run;
