use clap::Parser;

/// The request path allocates per request (Pingora's headers and buffers); mimalloc's
/// thread-local free lists cost far less than glibc's malloc there.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = meshgate::cli::Cli::parse();
    std::process::exit(meshgate::cli::run(cli));
}
