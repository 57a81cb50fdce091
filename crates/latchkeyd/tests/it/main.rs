//! latchkeyd end to end: one test binary (each extra binary costs a link on 2 cores), every
//! test against a real server on 127.0.0.1:0, on SQLite and on PostgreSQL.

mod common;

mod api;
mod authorize;
mod cli;
mod device;
mod dpop;
mod guard;
mod processes;
mod refresh;
mod rotation;
mod service;
mod ssf;
mod token;
