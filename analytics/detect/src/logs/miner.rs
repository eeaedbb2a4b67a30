//! Streaming template miner: a Drain-style prefix tree over masked tokens, plus a
//! closed-vocabulary rule that keeps words like `Started`/`Stopped` in the template when a
//! position only ever takes a handful of values.
//!
//! Messages are bucketed by (token count, first `depth` tokens). In a bucket, a message joins the
//! cluster whose constant, non-punctuation positions it matches best, if at least `similarity` of
//! them match; differing positions become `<*>`. For a position that became `<*>` from a word, the
//! cluster counts up to `max_values` distinct values; if it ends up with 2..=`max_closed` values it
//! is part of the template (unless it follows `=`, a glued `:`, a `<*>` or an identifier noun such
//! as `user` or `host`, where a word is a value).

use std::collections::HashMap;

use super::tokens::{Token, WILD, render};

const PUNCT: &[&str] = &[
    "=", ",", ";", ":", "(", ")", "[", "]", "{", "}", "\"", "'", "|",
];
/// Words after which the next word names an entity: a value, never part of the template.
const NOUNS: &[&str] = &[
    "user",
    "username",
    "host",
    "hostname",
    "node",
    "server",
    "client",
    "port",
    "file",
    "filename",
    "path",
    "dir",
    "directory",
    "folder",
    "id",
    "name",
    "uid",
    "gid",
    "pid",
    "instance",
    "device",
    "interface",
    "address",
    "addr",
    "ip",
    "account",
    "domain",
    "job",
    "task",
    "container",
    "app",
    "application",
    "package",
    "table",
    "database",
    "db",
    "queue",
    "topic",
    "volume",
    "disk",
    "image",
    "process",
    "thread",
    "session",
    "url",
    "uri",
    "key",
    "group",
    "role",
    "service",
    "module",
    "class",
];

/// The miner's settings; one configuration serves every kind of log.
#[derive(Debug, Clone)]
pub struct MinerConfig {
    /// Share of a cluster's constant positions a message must match to join it.
    pub similarity: f64,
    /// Leading tokens that, with the token count, pick the bucket.
    pub depth: usize,
    /// Distinct values tracked per position before it is deemed truly variable.
    pub max_values: usize,
    /// Most distinct values a position may have and still be part of the template.
    pub max_closed: usize,
}

impl Default for MinerConfig {
    fn default() -> Self {
        Self {
            similarity: 0.6,
            depth: 2,
            max_values: 8,
            max_closed: 6,
        }
    }
}

#[derive(Debug)]
struct Cluster {
    template: Vec<String>,
    sps: Vec<bool>,
    count: u64,
    /// Values seen at positions generalized from words, while few enough to track.
    values: HashMap<usize, Vec<(String, u64)>>,
    /// Positions known to be truly variable.
    open: Vec<bool>,
}

/// A message's template: the group it belongs to and the template text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateLabel {
    /// Identifies the template: the cluster and its values at closed-vocabulary positions.
    pub key: String,
    /// The template, variables as `<*>`.
    pub template: String,
}

/// The streaming miner.
#[derive(Debug, Default)]
pub struct Miner {
    config: MinerConfig,
    /// Clusters by a hash of (token count, first `depth` tokens); a hash collision only costs a
    /// comparison, since [`Miner::add`] checks the key itself.
    buckets: HashMap<u64, Vec<usize>>,
    clusters: Vec<Cluster>,
}

impl Miner {
    /// A miner with `config`.
    pub fn new(config: MinerConfig) -> Self {
        Self {
            config,
            ..Default::default()
        }
    }

    /// Adds a tokenized message; returns its cluster id.
    pub fn add(&mut self, tokens: &[Token]) -> usize {
        let depth = self.config.depth.min(tokens.len());
        let bucket = self.buckets.entry(bucket_hash(tokens, depth)).or_default();
        let mut best: Option<(usize, f64, usize)> = None;
        let same_key = |c: &Cluster| {
            c.template.len() == tokens.len()
                && c.template[..depth]
                    .iter()
                    .zip(tokens)
                    .all(|(a, b)| *a == b.text)
        };
        for &id in bucket.iter().filter(|id| same_key(&self.clusters[**id])) {
            let (sim, params) = similarity(&self.clusters[id].template, tokens);
            if best.is_none_or(|(_, s, p)| sim > s || (sim == s && params > p)) {
                best = Some((id, sim, params));
            }
        }
        if let Some((id, sim, _)) = best
            && sim >= self.config.similarity
        {
            update(&mut self.clusters[id], tokens, self.config.max_values);
            return id;
        }
        let id = self.clusters.len();
        self.clusters.push(Cluster {
            template: tokens.iter().map(|t| t.text.clone()).collect(),
            sps: tokens.iter().map(|t| t.sp).collect(),
            count: 1,
            values: HashMap::new(),
            open: vec![false; tokens.len()],
        });
        bucket.push(id);
        id
    }

    /// The template of a message that was added to `cluster`, as the cluster stands now.
    pub fn label(&self, cluster: usize, tokens: &[Token]) -> TemplateLabel {
        let c = &self.clusters[cluster];
        let closed = self.closed_positions(c);
        let mut key = cluster.to_string();
        let mut template: Vec<&str> = c.template.iter().map(String::as_str).collect();
        for &i in &closed {
            key.push('\u{1f}');
            key.push_str(&tokens[i].text);
            template[i] = &tokens[i].text;
        }
        TemplateLabel {
            key,
            template: render(template, &c.sps),
        }
    }

    fn closed_positions(&self, c: &Cluster) -> Vec<usize> {
        let mut out: Vec<usize> = c
            .values
            .iter()
            .filter(|(i, vals)| {
                let i = **i;
                let prev = (i > 0).then(|| c.template[i - 1].as_str());
                let value_slot = prev == Some("=") || (prev == Some(":") && !c.sps[i]);
                !c.open[i]
                    && !value_slot
                    && prev != Some(WILD)
                    && !prev.is_some_and(|p| NOUNS.contains(&p))
                    && (2..=self.config.max_closed).contains(&vals.len())
            })
            .map(|(i, _)| *i)
            .collect();
        out.sort_unstable();
        out
    }
}

fn bucket_hash(tokens: &[Token], depth: usize) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    tokens.len().hash(&mut h);
    for t in &tokens[..depth] {
        t.text.hash(&mut h);
    }
    h.finish()
}

/// Share of the template's constant, non-punctuation positions the tokens match, and the number of
/// variable positions (more is a better tie-breaker: a more general template).
fn similarity(template: &[String], tokens: &[Token]) -> (f64, usize) {
    let (mut same, mut total, mut params) = (0usize, 0usize, 0usize);
    for (a, b) in template.iter().zip(tokens) {
        if a == WILD {
            params += 1;
        } else if !PUNCT.contains(&a.as_str()) {
            total += 1;
            same += usize::from(*a == b.text);
        }
    }
    let sim = if total == 0 {
        1.0
    } else {
        same as f64 / total as f64
    };
    (sim, params)
}

fn update(c: &mut Cluster, tokens: &[Token], max_values: usize) {
    for (i, tok) in tokens.iter().enumerate() {
        let b = tok.text.as_str();
        if c.template[i] != WILD && c.template[i] != b {
            let old = std::mem::replace(&mut c.template[i], WILD.to_string());
            if b == WILD {
                c.open[i] = true;
            } else {
                c.values.insert(i, vec![(old, c.count), (b.to_string(), 1)]);
            }
        } else if c.template[i] == WILD && !c.open[i] {
            if b == WILD {
                c.open[i] = true;
                c.values.remove(&i);
            } else if let Some(vals) = c.values.get_mut(&i) {
                match vals.iter_mut().find(|(v, _)| v == b) {
                    Some((_, n)) => *n += 1,
                    None => vals.push((b.to_string(), 1)),
                }
                if vals.len() > max_values {
                    c.open[i] = true;
                    c.values.remove(&i);
                }
            }
        }
    }
    c.count += 1;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::tokenize;

    fn mine(lines: &[&str]) -> Vec<TemplateLabel> {
        let mut m = Miner::new(MinerConfig::default());
        let ids: Vec<(usize, Vec<Token>)> = lines
            .iter()
            .map(|l| {
                let t = tokenize(l);
                (m.add(&t), t)
            })
            .collect();
        ids.iter().map(|(id, t)| m.label(*id, t)).collect()
    }

    #[test]
    fn variables_generalize_and_closed_vocabularies_split() {
        let labels = mine(&[
            "Instance state Started vm-1 by user alice",
            "Instance state Stopped vm-2 by user bob",
            "Instance state Started vm-3 by user carol",
            "Instance state Paused vm-4 by user dave",
            "Connection closed to 10.0.0.1",
        ]);
        assert_eq!(labels[0].template, "Instance state Started <*> by user <*>");
        assert_eq!(labels[1].template, "Instance state Stopped <*> by user <*>");
        assert_eq!(labels[0].key, labels[2].key);
        assert_ne!(labels[0].key, labels[1].key);
        assert_eq!(labels[4].template, "Connection closed to <*>");
    }

    #[test]
    fn open_variables_stay_variable() {
        let lines: Vec<String> = (0..20)
            .map(|i| format!("request for item{} done", char::from(b'a' + i)))
            .collect();
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let labels = mine(&refs);
        assert!(labels.iter().all(|l| l.key == labels[0].key));
        assert_eq!(labels[0].template, "request for <*> done");
    }
}
