//! Project tooling. Run with: `cargo xtask <command>`.
//!
//! * `layers`: prints the dependency graph between the top-level modules of `fluxor/src`, the
//!   layers it forms (bottom-up), and fails on any import cycle other than the one allowed
//!   (`component` ↔ `runtime`: a handler may deploy).
//! * `sizes`: fails when a source file of `fluxor/src` or `fluxor-macros/src` is longer than
//!   600 lines.
//! * `check`: both.

mod graph;
mod scan;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The one cycle the runtime may have: a handler's `Context` deploys through the runtime,
/// and the runtime drives components.
const ALLOWED_CYCLE: &[&str] = &["component", "runtime"];

/// The longest a source file may be.
const MAX_LINES: usize = 600;

fn main() -> ExitCode {
    let command = std::env::args().nth(1).unwrap_or_default();
    let root = workspace_root();
    let result = match command.as_str() {
        "layers" => layers(&root),
        "sizes" => sizes(&root),
        "check" => layers(&root).and_then(|()| sizes(&root)),
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
       check   layers, then sizes"
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
