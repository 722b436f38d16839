//! The store contract, one narrow trait per table or concern. A use-case's
//! transaction ([`super::Tx`]) implements all of them; each engine writes
//! each trait in its own file. Methods marked `lock` take the row lock
//! until commit, so that check-then-write sequences are safe under
//! concurrency.

pub mod chats;
pub mod invites;
pub mod log;
pub mod members;
pub mod messages;
pub mod pages;
pub mod posts;
pub mod reads;
pub mod users;
