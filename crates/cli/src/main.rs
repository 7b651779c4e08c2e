//! `reelvec`: the command-line tool. Parses arguments, calls the library crates, maps errors to
//! one clear line and a non-zero exit.

fn main() {
    println!("reelvec");
}
