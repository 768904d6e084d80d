//! `smallest voices`, `smallest clone …` and `smallest dicts …`: the account's voices,
//! voice clones and pronunciation dictionaries.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use smallest_core::{
    CreateDict, CreateVoiceClone, DeleteDict, Language, PronunciationItem, TtsModel, UpdateDict,
    VoiceFilter,
};
use smallest_hyper::Client;

use crate::explain;

#[derive(Args, Debug)]
pub(crate) struct VoicesArgs {
    /// Only voices speaking this language (a code such as `en`, or a name such as `hindi`).
    #[arg(long)]
    language: Option<String>,
    /// Only voices of this gender (`male`, `female`).
    #[arg(long)]
    gender: Option<String>,
    /// Only voices with this accent (e.g. `american`, `indian`).
    #[arg(long)]
    accent: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    pub(crate) client: crate::ClientArgs,
}

/// `smallest clone …`: a subcommand, and the client flags (before or after it).
#[derive(Args, Debug)]
pub(crate) struct CloneArgs {
    #[command(subcommand)]
    pub(crate) command: CloneCommand,
    #[command(flatten)]
    pub(crate) client: crate::ClientArgs,
}

/// `smallest dicts …`: a subcommand, and the client flags (before or after it).
#[derive(Args, Debug)]
pub(crate) struct DictsArgs {
    #[command(subcommand)]
    pub(crate) command: DictsCommand,
    #[command(flatten)]
    pub(crate) client: crate::ClientArgs,
}

#[derive(Subcommand, Debug)]
pub(crate) enum CloneCommand {
    /// Create an instant voice clone from a 5–15 s recording (WAV, MP3, WebM or MP4, ≤ 5 MB).
    Create {
        /// The recording.
        file: PathBuf,
        /// The clone's display name.
        #[arg(long)]
        name: String,
        /// The language of the recording (e.g. `en`, `hi`).
        #[arg(long)]
        language: Option<String>,
        /// `lightning-v3.1` (default) or `lightning-v3.1-pro`.
        #[arg(long)]
        model: Option<String>,
        /// A description.
        #[arg(long)]
        description: Option<String>,
        /// Print the whole response as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List your clones. (Clones are deleted in the console: the API has no key-based delete.)
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum DictsCommand {
    /// List your pronunciation dictionaries.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Create a dictionary from `word=pronunciation` items or a JSON file.
    Create(DictItems),
    /// Replace the items of a dictionary.
    Update {
        /// The dictionary id.
        id: String,
        #[command(flatten)]
        items: DictItems,
    },
    /// Delete a dictionary.
    Delete {
        /// The dictionary id.
        id: String,
    },
}

#[derive(Args, Debug)]
pub(crate) struct DictItems {
    /// Items as `word=pronunciation` (e.g. `mysql=my-sequel`).
    items: Vec<String>,
    /// A JSON file: `[{"word": …, "pronunciation": …}, …]` or `{"items": [...]}`.
    #[arg(long)]
    file: Option<PathBuf>,
}

pub(crate) async fn voices(client: &Client, args: VoicesArgs) -> Result<ExitCode, String> {
    let voices = client.voices().await.map_err(|e| explain(&e))?;
    let mut filter = VoiceFilter::new();
    if let Some(language) = &args.language {
        filter = filter.language(language);
    }
    if let Some(gender) = &args.gender {
        filter = filter.gender(gender);
    }
    if let Some(accent) = &args.accent {
        filter = filter.accent(accent);
    }
    let chosen: Vec<_> = filter.filter(&voices).collect();
    if args.json {
        return print_json(&chosen);
    }
    if chosen.is_empty() {
        eprintln!(
            "no voice matched (of {}); list them all with `smallest voices`",
            voices.len()
        );
        return Ok(ExitCode::FAILURE);
    }
    let rows = chosen
        .iter()
        .map(|v| {
            vec![
                v.id.clone(),
                v.display_name.clone(),
                v.tags.gender.clone().unwrap_or_default(),
                v.tags.accent.clone().unwrap_or_default(),
                v.tags.age.clone().unwrap_or_default(),
                v.tags.languages.join(", "),
            ]
        })
        .collect::<Vec<_>>();
    print_table(
        &["ID", "NAME", "GENDER", "ACCENT", "AGE", "LANGUAGES"],
        &rows,
    );
    eprintln!("{} of {} voices", chosen.len(), voices.len());
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn clone(client: &Client, command: CloneCommand) -> Result<ExitCode, String> {
    match command {
        CloneCommand::Create {
            file,
            name,
            language,
            model,
            description,
            json,
        } => {
            let bytes =
                std::fs::read(&file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            let file_name = file
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("sample.wav")
                .to_owned();
            let mut request = CreateVoiceClone::new(name, bytes, file_name);
            if let Some(language) = language {
                request = request.language(Language::from_wire(language.trim()));
            }
            if let Some(model) = model {
                request = request.model(TtsModel::parse(&model));
            }
            if let Some(description) = description {
                request = request.description(description);
            }
            let clone = client
                .create_voice_clone(&request)
                .await
                .map_err(|e| explain(&e))?;
            if json {
                return print_json(&clone);
            }
            outln!("{}", clone.id);
            eprintln!(
                "created voice clone {:?} ({}); synthesize with --voice {}",
                clone.display_name,
                clone.status.as_ref().map_or("unknown", |s| s.as_str()),
                clone.id
            );
            Ok(ExitCode::SUCCESS)
        }
        CloneCommand::List { json } => {
            let clones = client.list_voice_clones().await.map_err(|e| explain(&e))?;
            if json {
                return print_json(&clones);
            }
            let rows = clones
                .iter()
                .map(|c| {
                    vec![
                        c.id.clone(),
                        c.display_name.clone(),
                        c.status
                            .as_ref()
                            .map(|s| s.as_str().to_owned())
                            .unwrap_or_default(),
                        c.language.clone().unwrap_or_default(),
                        c.model_ids.join(", "),
                        c.created_at.clone().unwrap_or_default(),
                    ]
                })
                .collect::<Vec<_>>();
            print_table(
                &["ID", "NAME", "STATUS", "LANGUAGE", "MODELS", "CREATED"],
                &rows,
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub(crate) async fn dicts(client: &Client, command: DictsCommand) -> Result<ExitCode, String> {
    match command {
        DictsCommand::List { json } => {
            let dicts = client.list_dicts().await.map_err(|e| explain(&e))?;
            if json {
                return print_json(&dicts);
            }
            let rows = dicts
                .iter()
                .map(|d| {
                    let items = d
                        .items
                        .iter()
                        .map(|i| format!("{}={}", i.word, i.pronunciation))
                        .collect::<Vec<_>>()
                        .join(" ");
                    vec![
                        d.id.clone(),
                        items,
                        d.created_at.clone().unwrap_or_default(),
                    ]
                })
                .collect::<Vec<_>>();
            print_table(&["ID", "ITEMS", "CREATED"], &rows);
            Ok(ExitCode::SUCCESS)
        }
        DictsCommand::Create(items) => {
            let dict = client
                .create_dict(&CreateDict::new(items.parse()?))
                .await
                .map_err(|e| explain(&e))?;
            outln!("{}", dict.id);
            eprintln!(
                "created dictionary {} with {} items; use it with `pronunciation_dicts`",
                dict.id,
                dict.items.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        DictsCommand::Update { id, items } => {
            let dict = client
                .update_dict(&UpdateDict::new(id, items.parse()?))
                .await
                .map_err(|e| explain(&e))?;
            eprintln!(
                "updated dictionary {} ({} items)",
                dict.id,
                dict.items.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        DictsCommand::Delete { id } => {
            let deleted = client
                .delete_dict(&DeleteDict::new(id))
                .await
                .map_err(|e| explain(&e))?;
            if !deleted.deleted {
                return Err(format!(
                    "the server did not delete dictionary {} (it answered \"deleted\": false)",
                    deleted.id
                ));
            }
            eprintln!("deleted dictionary {}", deleted.id);
            Ok(ExitCode::SUCCESS)
        }
    }
}

impl DictItems {
    /// The items from the arguments, then from the file.
    fn parse(&self) -> Result<Vec<PronunciationItem>, String> {
        let mut items = Vec::new();
        for arg in &self.items {
            let (word, pronunciation) = arg.split_once('=').ok_or_else(|| {
                format!(
                    "invalid item {arg:?}: write items as word=pronunciation, e.g. mysql=my-sequel"
                )
            })?;
            items.push(PronunciationItem::new(word, pronunciation).map_err(|e| e.to_string())?);
        }
        if let Some(path) = &self.file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let value: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| format!("{} is not JSON: {e}", path.display()))?;
            let list = value.get("items").cloned().unwrap_or(value);
            let parsed: Vec<PronunciationItem> = serde_json::from_value(list).map_err(|e| {
                format!(
                    "{}: expected [{{\"word\": …, \"pronunciation\": …}}, …]: {e}",
                    path.display()
                )
            })?;
            for item in parsed {
                items.push(
                    PronunciationItem::new(item.word, item.pronunciation)
                        .map_err(|e| e.to_string())?,
                );
            }
        }
        Ok(items)
    }
}

fn print_json(value: &impl serde::Serialize) -> Result<ExitCode, String> {
    outln!(
        "{}",
        serde_json::to_string_pretty(value).map_err(|e| e.to_string())?
    );
    Ok(ExitCode::SUCCESS)
}

/// A plain left-aligned table; columns sized to their widest cell.
fn print_table(header: &[&str], rows: &[Vec<String>]) {
    // Every cell is server text (names, ids, tags): shown with control characters escaped.
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            row.iter()
                .map(|c| crate::output::safe_line(c).into_owned())
                .collect()
        })
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        outln!("{}", out.trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}
