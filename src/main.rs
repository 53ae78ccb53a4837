use clap::Parser;

fn main() {
    let cli = meshgate::cli::Cli::parse();
    std::process::exit(meshgate::cli::run(cli));
}
