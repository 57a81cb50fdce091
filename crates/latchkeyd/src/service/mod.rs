//! What a request does, once the handler has parsed it: one function per capability, which owns
//! its transactions, the events it records and the decisions between them. Handlers (`http`)
//! parse, call one of these, and map its result to a response; the store (`store`) keeps the
//! records. The refresh grant's service is the rotation writer (`store::rotation::Rotator`),
//! every revocation's is `store::revocation`.

pub mod device;
pub mod revoke;
pub mod signin;
