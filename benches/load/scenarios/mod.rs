//! The six scenarios, one file each: (a) sends, (b) spread with pgbench,
//! (c) reads (MarkChatRead), (d) fan-out, (e) payloads, (f) pages (the
//! read RPCs beside pgbench running their statements).

pub(crate) mod fanout;
pub(crate) mod pages;
pub(crate) mod payloads;
pub(crate) mod reads;
pub(crate) mod sends;
pub(crate) mod spread;
