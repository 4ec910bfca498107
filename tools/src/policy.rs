//! `plinth policy check FILES…`: appliance specs and policies checked as one set, every
//! problem reported as `file:line:col: message`.
//!
//! Owns reading the files and the agents a spec names, and the reporting. What the files
//! mean and how they are cross-checked is `plinth-policy`'s, the same code the runtime
//! runs on a catalog.

use std::path::{Path, PathBuf};

use plinth_container::{Container, Manifest};
use plinth_policy::appliance::{AgentSource, Appliance};
use plinth_policy::{AgentDef, Diagnostic};

/// A file of the set.
pub struct Source {
    pub path: PathBuf,
    pub text: String,
}

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not UTF-8 text")]
    NotUtf8 { path: PathBuf },
    /// Each line is `file:line:col: message`.
    #[error("{}", .0.join("\n"))]
    Problems(Vec<String>),
    #[error("the runtime refused the policy ({status}): {message}")]
    Refused { status: u16, message: String },
    #[error(transparent)]
    Api(#[from] crate::api::ApiError),
}

/// What `plinth policy apply` did: the file's name in the runtime's set, and how long
/// the runtime took to apply the new set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub name: String,
    pub applied_us: u64,
}

/// The name a file goes by in the runtime's set: its own file name.
pub fn runtime_name(path: &Path) -> Option<String> {
    path.file_name()?.to_str().map(str::to_string)
}

/// `PUT /api/v1/policies/NAME` with the file's text: the runtime checks the set with it
/// (as `check` does here) and applies it live. Problems come back as `file:line:col:
/// message`, the file being `path` where the runtime names this one.
pub fn apply(
    addr: std::net::SocketAddr,
    path: &Path,
    name: &str,
    timeout: std::time::Duration,
) -> Result<Applied, PolicyError> {
    let source = read_source(path)?;
    let r = crate::api::request_typed(
        addr,
        "PUT",
        &format!("/api/v1/policies/{name}"),
        Some(("application/toml", source.text.as_bytes())),
        timeout,
    )?;
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
    match r.status {
        200 => Ok(Applied {
            name: name.to_string(),
            applied_us: v["applied_us"].as_u64().unwrap_or(0),
        }),
        422 => Err(PolicyError::Problems(problem_lines(&v, path, name))),
        status => Err(PolicyError::Refused {
            status,
            message: v["error"].as_str().map_or_else(|| r.text(), str::to_string),
        }),
    }
}

/// The runtime's problems as `file:line:col: message`, this file by its local path and
/// the runtime's other files as `runtime:NAME`.
fn problem_lines(v: &serde_json::Value, path: &Path, name: &str) -> Vec<String> {
    let mut lines: Vec<String> = v["problems"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|p| {
            let file = p["file"].as_str().unwrap_or("?");
            let file = if file == name {
                path.display().to_string()
            } else {
                format!("runtime:{file}")
            };
            format!(
                "{file}:{}:{}: {}",
                p["line"].as_u64().unwrap_or(0),
                p["col"].as_u64().unwrap_or(0),
                p["message"].as_str().unwrap_or("")
            )
        })
        .collect();
    if lines.is_empty() {
        lines.push(format!(
            "{}: {}",
            path.display(),
            v["error"].as_str().unwrap_or("refused")
        ));
    }
    lines
}

/// Reads a text file the set names.
pub fn read_source(path: &Path) -> Result<Source, PolicyError> {
    let bytes = std::fs::read(path).map_err(|source| PolicyError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let text = String::from_utf8(bytes).map_err(|_| PolicyError::NotUtf8 {
        path: path.to_path_buf(),
    })?;
    Ok(Source {
        path: path.to_path_buf(),
        text,
    })
}

/// `file:line:col: message` for each diagnostic.
pub fn format_diagnostics(sources: &[Source], diags: &[Diagnostic]) -> Vec<String> {
    diags
        .iter()
        .map(|d| {
            let name = sources
                .get(d.file)
                .map_or_else(|| "?".to_string(), |s| s.path.display().to_string());
            format!("{name}:{d}")
        })
        .collect()
}

/// The name and version of the agent a spec entry names: a directory's manifest, or a
/// container's (its signature is not checked here; `plinth image build` does).
pub fn agent_def(base: &Path, source: &AgentSource) -> Result<AgentDef, String> {
    let manifest = match source {
        AgentSource::Dir(dir) => {
            let path = base.join(dir).join(plinth_container::MANIFEST_NAME);
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            Manifest::parse(&text).map_err(|e| format!("{}:{e}", path.display()))?
        }
        AgentSource::File(file) => {
            let path = base.join(file);
            let data =
                std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            Container::inspect(&data, &plinth_catalog::CONTAINER_LIMITS)
                .map_err(|e| format!("{}: {e}", path.display()))?
                .manifest()
                .clone()
        }
    };
    Ok(AgentDef {
        name: manifest.name,
        version: manifest.version,
    })
}

/// The directory paths in a spec are relative to.
pub fn base_of(path: &Path) -> PathBuf {
    path.parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// [`plinth_policy::check_files`] over read files, named by their paths.
pub fn check_sources(
    sources: &[Source],
    agents: Option<&[AgentDef]>,
) -> Result<plinth_policy::Checked, Vec<Diagnostic>> {
    let names: Vec<String> = sources
        .iter()
        .map(|s| s.path.display().to_string())
        .collect();
    let files: Vec<(&str, &str)> = names
        .iter()
        .zip(sources)
        .map(|(n, s)| (n.as_str(), s.text.as_str()))
        .collect();
    plinth_policy::check_files(&files, agents)
}

/// What a clean check found.
pub struct Summary {
    pub files: usize,
    pub appliance: Option<String>,
    pub policies: plinth_policy::policies::PolicySet,
}

/// Checks `paths` as one set. A spec among them brings in the policy files it lists (if
/// not given too) and its agents' names and versions.
pub fn check(paths: &[PathBuf]) -> Result<Summary, PolicyError> {
    let mut sources: Vec<Source> = Vec::new();
    for p in paths {
        sources.push(read_source(p)?);
    }
    // A spec's own policy files join the set; agent problems become diagnostics at the
    // spec's agent entry.
    let mut agents: Option<Vec<AgentDef>> = None;
    let mut agent_problems: Vec<Diagnostic> = Vec::new();
    let given = sources.len();
    for i in 0..given {
        let Ok(spec) = Appliance::parse(&sources[i].text, i) else {
            continue;
        };
        let base = base_of(&sources[i].path);
        for p in &spec.policies {
            let path = base.join(&p.value);
            let same = |s: &Source| {
                s.path == path
                    || std::fs::canonicalize(&s.path).ok() == std::fs::canonicalize(&path).ok()
            };
            if !sources.iter().any(same) {
                match read_source(&path) {
                    Ok(s) => sources.push(s),
                    Err(e) => agent_problems.push(at(&sources[i].text, i, &p.span, e.to_string())),
                }
            }
        }
        let mut defs = Vec::new();
        for a in &spec.agents {
            match agent_def(&base, &a.value) {
                Ok(d) => defs.push(d),
                Err(e) => agent_problems.push(at(&sources[i].text, i, &a.span, e)),
            }
        }
        agents = Some(defs);
    }
    let names: Vec<String> = sources
        .iter()
        .map(|s| s.path.display().to_string())
        .collect();
    let files: Vec<(&str, &str)> = names
        .iter()
        .zip(&sources)
        .map(|(n, s)| (n.as_str(), s.text.as_str()))
        .collect();
    let result = plinth_policy::check_files(&files, agents.as_deref());
    match result {
        Ok(checked) if agent_problems.is_empty() => Ok(Summary {
            files: sources.len(),
            appliance: checked
                .appliance
                .map(|a| format!("{} {}", a.name, a.version)),
            policies: checked.policies,
        }),
        Ok(_) => Err(PolicyError::Problems(format_diagnostics(
            &sources,
            &agent_problems,
        ))),
        Err(mut d) => {
            d.extend(agent_problems);
            d.sort();
            Err(PolicyError::Problems(format_diagnostics(&sources, &d)))
        }
    }
}

fn at(text: &str, file: usize, span: &std::ops::Range<usize>, message: String) -> Diagnostic {
    let (line, col) = plinth_policy::doc::line_col(text, span.start);
    Diagnostic {
        file,
        line,
        col,
        message,
    }
}
