//! Cycles and layers of a module graph.

use std::collections::{BTreeMap, BTreeSet};

use crate::scan::Deps;

/// A directed graph over module names.
pub(crate) struct Graph<'a> {
    deps: &'a Deps,
}

impl<'a> Graph<'a> {
    pub(crate) fn new(deps: &'a Deps) -> Self {
        Graph { deps }
    }

    fn targets(&self, node: &str) -> impl Iterator<Item = &'a String> {
        self.deps.get(node).into_iter().flatten()
    }

    /// The strongly connected components with more than one module (the import cycles),
    /// each sorted, in a stable order.
    pub(crate) fn cycles(&self) -> Vec<Vec<String>> {
        let mut cycles: Vec<Vec<String>> = self
            .components()
            .into_iter()
            .filter(|c| c.len() > 1)
            .map(|c| c.into_iter().collect())
            .collect();
        cycles.sort();
        cycles
    }

    /// The edges between members of `cycle`.
    pub(crate) fn edges_within(&self, cycle: &[String]) -> Vec<(String, String)> {
        let mut edges = Vec::new();
        for from in cycle {
            for to in self.targets(from) {
                if cycle.contains(to) {
                    edges.push((from.clone(), to.clone()));
                }
            }
        }
        edges
    }

    /// Strongly connected components (Kosaraju: finish order on the graph, then sweeps of
    /// the reversed graph).
    fn components(&self) -> Vec<BTreeSet<String>> {
        let mut order = Vec::new();
        let mut seen = BTreeSet::new();
        for start in self.deps.keys() {
            self.finish_order(start, &mut seen, &mut order);
        }
        let mut reversed: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (from, targets) in self.deps {
            for to in targets {
                reversed.entry(to.as_str()).or_default().push(from.as_str());
            }
        }
        let mut assigned = BTreeSet::new();
        let mut components = Vec::new();
        for start in order.iter().rev() {
            if assigned.contains(start.as_str()) {
                continue;
            }
            let mut component = BTreeSet::new();
            let mut stack = vec![start.as_str()];
            assigned.insert(start.clone());
            while let Some(node) = stack.pop() {
                component.insert(node.to_owned());
                for &prev in reversed.get(node).into_iter().flatten() {
                    if assigned.insert(prev.to_owned()) {
                        stack.push(prev);
                    }
                }
            }
            components.push(component);
        }
        components
    }

    /// Depth-first post-order from `start`, without recursion.
    fn finish_order(&self, start: &str, seen: &mut BTreeSet<String>, order: &mut Vec<String>) {
        if !seen.insert(start.to_owned()) {
            return;
        }
        let mut stack: Vec<(String, Vec<String>)> =
            vec![(start.to_owned(), self.targets(start).cloned().collect())];
        while let Some((node, pending)) = stack.last_mut() {
            match pending.pop() {
                Some(next) => {
                    if seen.insert(next.clone()) {
                        let targets = self.targets(&next).cloned().collect();
                        stack.push((next, targets));
                    }
                }
                None => {
                    order.push(node.clone());
                    stack.pop();
                }
            }
        }
    }

    /// The layers of the graph, bottom-up: a module's layer is one above the highest layer it
    /// uses; the members of a cycle share one layer.
    pub(crate) fn layers(&self) -> Vec<Vec<String>> {
        let components = self.components();
        let component_of: BTreeMap<&str, usize> = components
            .iter()
            .enumerate()
            .flat_map(|(i, c)| c.iter().map(move |m| (m.as_str(), i)))
            .collect();
        let mut level: Vec<Option<usize>> = vec![None; components.len()];
        // Every component below another is resolved first: repeat until nothing changes.
        let mut changed = true;
        while changed {
            changed = false;
            for (i, component) in components.iter().enumerate() {
                if level[i].is_some() {
                    continue;
                }
                let mut highest = Some(0);
                for member in component {
                    for to in self.targets(member) {
                        let j = component_of[to.as_str()];
                        if j == i {
                            continue;
                        }
                        highest = match (highest, level[j]) {
                            (Some(h), Some(l)) => Some(h.max(l + 1)),
                            _ => None,
                        };
                    }
                }
                if let Some(l) = highest {
                    level[i] = Some(l);
                    changed = true;
                }
            }
        }
        let mut layers: Vec<Vec<String>> = Vec::new();
        for (i, component) in components.iter().enumerate() {
            let l = level[i].unwrap_or(0);
            if layers.len() <= l {
                layers.resize(l + 1, Vec::new());
            }
            let name = component.iter().cloned().collect::<Vec<_>>().join(" <-> ");
            layers[l].push(name);
        }
        for layer in &mut layers {
            layer.sort();
        }
        layers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deps(edges: &[(&str, &str)]) -> Deps {
        let mut d = Deps::new();
        for (from, to) in edges {
            d.entry(from.to_string())
                .or_default()
                .insert(to.to_string());
            d.entry(to.to_string()).or_default();
        }
        d
    }

    #[test]
    fn a_chain_has_no_cycle_and_one_layer_per_step() {
        let d = deps(&[("crate", "runtime"), ("runtime", "bus"), ("bus", "error")]);
        let g = Graph::new(&d);
        assert!(g.cycles().is_empty());
        assert_eq!(
            g.layers(),
            vec![vec!["error"], vec!["bus"], vec!["runtime"], vec!["crate"]]
        );
    }

    #[test]
    fn a_cycle_through_three_modules_is_found_with_its_edges() {
        let d = deps(&[
            ("bus", "runtime"),
            ("runtime", "error"),
            ("error", "bus"),
            ("bus", "address"),
        ]);
        let g = Graph::new(&d);
        let cycles = g.cycles();
        assert_eq!(cycles, vec![vec!["bus", "error", "runtime"]]);
        assert_eq!(g.edges_within(&cycles[0]).len(), 3);
        assert_eq!(g.layers()[0], vec!["address"]);
        assert_eq!(g.layers()[1], vec!["bus <-> error <-> runtime"]);
    }
}
