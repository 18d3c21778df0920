//! Project tooling. Run with: `cargo xtask <command>`.
//!
//! * `layers`: prints the dependency graph between the top-level modules of `fluxor/src`, the
//!   layers it forms (bottom-up), and fails on any import cycle other than the one allowed
//!   (`component` ↔ `runtime`: a handler may deploy).
//! * `sizes`: fails when a source file of `fluxor/src` or `fluxor-macros/src` is longer than
//!   600 lines.
//! * `check`: both.
//! * `loom`: runs the loom models of the runtime's lock-free protocols (the `loom_tests`
//!   modules of `fluxor/src`): `cargo test -p fluxor --lib --release loom_tests` built with
//!   `--cfg loom`, in its own target directory (`target/loom`, or `loom` under
//!   `CARGO_TARGET_DIR`), with at most `LOOM_MAX_PREEMPTIONS` preemptions per execution
//!   (3 unless set). Extra arguments go to the test binary: `cargo xtask loom -- --exact
//!   wake::loom_tests::a_wake_from_another_thread_is_never_lost` runs that model alone.

mod graph;
mod scan;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// The one cycle the runtime may have: a handler's `Context` deploys through the runtime,
/// and the runtime drives components.
const ALLOWED_CYCLE: &[&str] = &["component", "runtime"];

/// The longest a source file may be.
const MAX_LINES: usize = 600;

/// The preemption bound of the loom models unless `LOOM_MAX_PREEMPTIONS` says otherwise.
const LOOM_PREEMPTIONS: &str = "3";

fn main() -> ExitCode {
    let command = std::env::args().nth(1).unwrap_or_default();
    let root = workspace_root();
    let result = match command.as_str() {
        "layers" => layers(&root),
        "sizes" => sizes(&root),
        "check" => layers(&root).and_then(|()| sizes(&root)),
        "loom" => loom(
            &root,
            std::env::args().skip(2).skip_while(|a| a == "--").collect(),
        ),
        "test" => test(
            &root,
            std::env::args().skip(2).skip_while(|a| a == "--").collect(),
        ),
        "" | "help" | "--help" | "-h" => {
            println!("{}", usage());
            Ok(())
        }
        other => Err(format!("unknown command `{other}`\n\n{}", usage())),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn usage() -> &'static str {
    "usage: cargo xtask <command>\n\
     \n\
     commands:\n  \
       layers  print the module graph of fluxor/src; fail on a cycle other than component <-> runtime\n  \
       sizes   fail on a source file over 600 lines in fluxor/src or fluxor-macros/src\n  \
       check   layers, then sizes\n  \
       loom    run the loom models of fluxor/src (`--cfg loom`, LOOM_MAX_PREEMPTIONS=3 unless set)\n  \
       test    install what the tests need when missing (nats-server, chromium, chromium-driver,\n          \
       with apt-get),\n          \
       then `cargo test --workspace --all-features` (extra arguments go to cargo test)"
}

/// The workspace root: the parent of this crate's manifest directory.
fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

fn layers(root: &Path) -> Result<(), String> {
    let src = root.join("fluxor/src");
    let deps = scan::module_graph(&src)?;
    let graph = graph::Graph::new(&deps);

    println!("Module dependencies of fluxor/src (`crate` is lib.rs, the facade):");
    for (module, targets) in &deps {
        let list: Vec<&str> = targets.iter().map(String::as_str).collect();
        println!("  {module:<12} -> {}", list.join(", "));
    }

    let cycles = graph.cycles();
    let (allowed, forbidden): (Vec<_>, Vec<_>) = cycles
        .into_iter()
        .partition(|cycle| cycle.iter().all(|m| ALLOWED_CYCLE.contains(&m.as_str())));

    println!("\nLayers, bottom-up (each uses only the layers below it, and itself):");
    for (i, layer) in graph.layers().iter().enumerate() {
        println!("  {i}: {}", layer.join(", "));
    }
    println!();
    for cycle in &allowed {
        println!("Allowed cycle: {}", cycle.join(" <-> "));
    }
    if forbidden.is_empty() {
        println!("No other cycle.");
        return Ok(());
    }
    let mut message = String::from("import cycles between top-level modules of fluxor/src:");
    for cycle in &forbidden {
        message.push_str("\n  ");
        message.push_str(&cycle.join(" <-> "));
        for (from, to) in graph.edges_within(cycle) {
            message.push_str(&format!("\n      {from} uses {to}"));
        }
    }
    message.push_str(
        "\nmove the shared item down into a module both can use, or invert the dependency",
    );
    Err(message)
}

fn sizes(root: &Path) -> Result<(), String> {
    let mut too_long = Vec::new();
    for dir in ["fluxor/src", "fluxor-macros/src"] {
        for file in scan::rust_files(&root.join(dir))? {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            let lines = text.lines().count();
            if lines > MAX_LINES {
                let shown = file.strip_prefix(root).unwrap_or(&file);
                too_long.push(format!("  {} ({lines} lines)", shown.display()));
            }
        }
    }
    if too_long.is_empty() {
        println!(
            "Every source file of fluxor/src and fluxor-macros/src has at most {MAX_LINES} lines."
        );
        Ok(())
    } else {
        Err(format!(
            "source files over {MAX_LINES} lines (split them by concept):\n{}",
            too_long.join("\n")
        ))
    }
}

fn loom(root: &Path, test_args: Vec<String>) -> Result<(), String> {
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir).join("loom"),
        None => root.join("target/loom"),
    };
    let mut rustflags = std::env::var("RUSTFLAGS").unwrap_or_default();
    if !rustflags.is_empty() {
        rustflags.push(' ');
    }
    rustflags.push_str("--cfg loom");
    let preemptions =
        std::env::var("LOOM_MAX_PREEMPTIONS").unwrap_or_else(|_| LOOM_PREEMPTIONS.to_owned());
    println!("loom models, at most {preemptions} preemption(s) per execution");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(root)
        .args([
            "test",
            "-p",
            "fluxor",
            "--lib",
            "--release",
            "loom_tests",
            "--",
        ])
        .args(test_args)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env("RUSTFLAGS", rustflags)
        .env("CARGO_TARGET_DIR", &target)
        .env("LOOM_MAX_PREEMPTIONS", &preemptions)
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("the loom models failed ({status})"))
    }
}

/// Whether `program` runs (`--version`), looked up on the PATH and in the sbin directories
/// where Debian puts servers.
fn installed(program: &str) -> bool {
    ["", "/usr/sbin/", "/usr/bin/"].iter().any(|dir| {
        Command::new(format!("{dir}{program}"))
            .arg("--version")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok()
    })
}

/// Installs what the tests start when missing (`nats-server`; `chromium` and `chromium-driver`
/// for the dashboard's browser test), then runs the whole test suite.
fn test(root: &Path, test_args: Vec<String>) -> Result<(), String> {
    let mut missing = Vec::new();
    if !installed("nats-server") {
        missing.push("nats-server");
    }
    if !Path::new("/usr/bin/chromedriver").exists() {
        missing.extend(["chromium", "chromium-driver"]);
    }
    if !missing.is_empty() {
        let names = missing.join(" ");
        println!("{names}: missing, installing with apt-get");
        let apt = |args: &[&str]| -> Result<(), String> {
            let status = Command::new("apt-get")
                .args(args)
                .env("DEBIAN_FRONTEND", "noninteractive")
                .status()
                .map_err(|e| format!("cannot run apt-get ({e}); install {names} by hand"))?;
            if status.success() {
                Ok(())
            } else {
                Err(format!(
                    "`apt-get {}` failed; install {names} by hand (it must be root, or use sudo)",
                    args.join(" ")
                ))
            }
        };
        apt(&["update", "-q"])?;
        let mut install = vec!["install", "-y", "-q"];
        install.extend(&missing);
        apt(&install)?;
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(root)
        .args(["test", "--workspace", "--all-features"])
        .args(test_args)
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err("the tests failed".into())
    }
}
