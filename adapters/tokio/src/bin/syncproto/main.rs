//! The `syncproto` command-line tool (filled in below).

fn main() {}
