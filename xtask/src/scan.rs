//! Reads a crate's sources and finds which top-level module uses which.
//!
//! Every path that starts with `crate::`, `super::` or `self::` (in `use` items, expressions,
//! types and patterns) is resolved against the module it is written in; its first segment is
//! the top-level module it reaches. A path that ends at an item of `lib.rs` itself reaches
//! `crate`. Visibility paths (`pub(crate)`, `pub(in …)`) and items under `#[cfg(test)]` are
//! not dependencies and are skipped.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use syn::visit::Visit;

/// The name of the crate root in the graph.
pub(crate) const ROOT: &str = "crate";

/// Top-level module → the top-level modules it uses (itself excluded).
pub(crate) type Deps = BTreeMap<String, BTreeSet<String>>;

/// Every `.rs` file under `dir`, sorted.
pub(crate) fn rust_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        let entries =
            std::fs::read_dir(&d).map_err(|e| format!("cannot read {}: {e}", d.display()))?;
        for entry in entries {
            let path = entry
                .map_err(|e| format!("cannot read {}: {e}", d.display()))?
                .path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|x| x == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The module path of a file: `lib.rs` → `[]`, `bus/mod.rs` → `[bus]`, `bus/local.rs` →
/// `[bus, local]`.
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap_or(file);
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if let Some(last) = parts.pop() {
        let stem = last.trim_end_matches(".rs");
        if stem != "mod" && stem != "lib" {
            parts.push(stem.to_owned());
        }
    }
    parts
}

/// The graph of the crate whose `lib.rs` is in `src`.
pub(crate) fn module_graph(src: &Path) -> Result<Deps, String> {
    let files = rust_files(src)?;
    let top_level: BTreeSet<String> = files
        .iter()
        .filter_map(|f| module_path(src, f).into_iter().next())
        .collect();
    let mut deps = Deps::new();
    deps.insert(ROOT.to_owned(), BTreeSet::new());
    for module in &top_level {
        deps.insert(module.clone(), BTreeSet::new());
    }
    for file in &files {
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        let parsed =
            syn::parse_file(&text).map_err(|e| format!("cannot parse {}: {e}", file.display()))?;
        let here = module_path(src, file);
        let mut visitor = Uses {
            module: here.clone(),
            top_level: &top_level,
            found: BTreeSet::new(),
        };
        visitor.visit_file(&parsed);
        let from = here.first().cloned().unwrap_or_else(|| ROOT.to_owned());
        let entry = deps.entry(from.clone()).or_default();
        entry.extend(visitor.found.into_iter().filter(|to| *to != from));
    }
    Ok(deps)
}

/// Collects the top-level modules that the paths of one file reach.
struct Uses<'a> {
    /// The module being visited (the file's, plus inline modules entered).
    module: Vec<String>,
    top_level: &'a BTreeSet<String>,
    found: BTreeSet<String>,
}

impl Uses<'_> {
    /// Resolves a path given as its segments; records the top-level module it reaches.
    fn reach(&mut self, segments: &[String]) {
        let Some(first) = segments.first() else {
            return;
        };
        let mut absolute: Vec<String> = match first.as_str() {
            "crate" => Vec::new(),
            "self" => self.module.clone(),
            "super" => self.module.clone(),
            // In `lib.rs`, `use bus::EventBus` names a top-level module without `crate::`.
            m if self.module.is_empty() && self.top_level.contains(m) => Vec::new(),
            _ => return,
        };
        let mut rest = if absolute.is_empty() && first != "crate" {
            segments
        } else {
            &segments[1..]
        };
        if first == "super" {
            absolute.pop();
            while rest.first().is_some_and(|s| s == "super") {
                absolute.pop();
                rest = &rest[1..];
            }
        }
        absolute.extend(rest.iter().cloned());
        let target = match absolute.first() {
            Some(m) if self.top_level.contains(m) => m.clone(),
            _ => ROOT.to_owned(),
        };
        if std::env::var_os("XTASK_EXPLAIN").is_some() {
            eprintln!(
                "{} -> {target} via {}",
                self.module.join("::"),
                segments.join("::")
            );
        }
        self.found.insert(target);
    }

    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => {
                prefix.push(n.ident.to_string());
                self.reach(prefix);
                prefix.pop();
            }
            syn::UseTree::Rename(r) => {
                prefix.push(r.ident.to_string());
                self.reach(prefix);
                prefix.pop();
            }
            syn::UseTree::Glob(_) => self.reach(prefix),
            syn::UseTree::Group(g) => {
                for item in &g.items {
                    self.use_tree(prefix, item);
                }
            }
        }
    }
}

/// Whether the attributes hold `#[cfg(test)]`.
fn is_test_only(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg")
            && a.parse_args::<syn::Ident>()
                .is_ok_and(|ident| ident == "test")
    })
}

impl<'ast> Visit<'ast> for Uses<'_> {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        let attrs = match item {
            syn::Item::Mod(m) => &m.attrs,
            syn::Item::Fn(f) => &f.attrs,
            syn::Item::Impl(i) => &i.attrs,
            syn::Item::Use(u) => &u.attrs,
            _ => return syn::visit::visit_item(self, item),
        };
        if !is_test_only(attrs) {
            syn::visit::visit_item(self, item);
        }
    }

    fn visit_impl_item_fn(&mut self, item: &'ast syn::ImplItemFn) {
        if !is_test_only(&item.attrs) {
            syn::visit::visit_impl_item_fn(self, item);
        }
    }

    fn visit_item_mod(&mut self, item: &'ast syn::ItemMod) {
        if item.content.is_some() {
            self.module.push(item.ident.to_string());
            syn::visit::visit_item_mod(self, item);
            self.module.pop();
        }
    }

    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        self.use_tree(&mut Vec::new(), &item.tree);
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
        self.reach(&segments);
        syn::visit::visit_path(self, path);
    }

    fn visit_vis_restricted(&mut self, _: &'ast syn::VisRestricted) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deps_of(file: &str, module: &[&str], top_level: &[&str]) -> BTreeSet<String> {
        let top: BTreeSet<String> = top_level.iter().map(|s| s.to_string()).collect();
        let mut v = Uses {
            module: module.iter().map(|s| s.to_string()).collect(),
            top_level: &top,
            found: BTreeSet::new(),
        };
        v.visit_file(&syn::parse_file(file).expect("valid Rust"));
        v.found
    }

    #[test]
    fn use_items_expressions_and_super_paths_are_resolved() {
        let file = r#"
            use crate::{bus::EventBus, error::{BusError, SendError}};
            use super::Sibling;
            pub(crate) fn f() -> crate::ids::DeploymentId { crate::wake::ring(); todo() }
            pub(in crate::runtime) struct Hidden;
        "#;
        let found = deps_of(
            file,
            &["runtime", "deploy"],
            &["bus", "error", "ids", "wake", "runtime"],
        );
        let want: BTreeSet<String> = ["bus", "error", "ids", "wake", "runtime"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(found, want);
    }

    #[test]
    fn items_of_lib_rs_reach_the_root_and_test_modules_are_skipped() {
        let file = r#"
            fn f() { let _ = crate::__private::Either::Left; }
            #[cfg(test)]
            mod tests { use crate::bus::EventBus; }
        "#;
        let found = deps_of(file, &["worker"], &["bus", "worker"]);
        assert_eq!(found, BTreeSet::from([ROOT.to_owned()]));
    }

    #[test]
    fn module_paths_follow_file_layout() {
        let src = Path::new("/x/src");
        assert!(module_path(src, Path::new("/x/src/lib.rs")).is_empty());
        assert_eq!(module_path(src, Path::new("/x/src/bus/mod.rs")), ["bus"]);
        assert_eq!(
            module_path(src, Path::new("/x/src/bus/local.rs")),
            ["bus", "local"]
        );
    }
}
