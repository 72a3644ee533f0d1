//! `cyclone edit`: the general torrent editor (announce, announce-list, web seeds, http
//! seeds, comment, private, source, name, date, creator) over many files.
//!
//! Untouched keys keep their exact bytes. Top-level edits keep the info-hash; `--private`,
//! `--no-private`, `--source`, `--no-source` and `--name` change `info` and so the
//! info-hash, which is printed old -> new.

use std::path::PathBuf;

use cyclone_metainfo::bencode::Owned;
use cyclone_metainfo::path_rules;

use crate::commands::reannounce::for_each;
use crate::error::CliError;
use crate::torrent_edit::{self, Editable};
use crate::url_lists;

#[derive(Debug, clap::Args)]
pub struct EditArgs {
    /// Torrent files to change in place.
    #[arg(required = true)]
    pub torrents: Vec<PathBuf>,
    /// Set `announce`.
    #[arg(long, value_name = "URL")]
    pub announce: Option<String>,
    /// Remove `announce`.
    #[arg(long, conflicts_with = "announce")]
    pub no_announce: bool,
    /// Set `announce-list` tiers `url,url|url`.
    #[arg(long = "announce-list", alias = "announce_list", value_name = "TIERS")]
    pub announce_list: Option<String>,
    /// Remove `announce-list`.
    #[arg(long, conflicts_with = "announce_list")]
    pub no_announce_list: bool,
    /// Set the BEP 19 web seeds (`url-list`); repeat or separate with commas.
    #[arg(short = 'w', long = "url-list", alias = "web-seed", value_name = "URL")]
    pub url_list: Vec<String>,
    /// Remove `url-list`.
    #[arg(long, conflicts_with = "url_list")]
    pub no_url_list: bool,
    /// Set the BEP 17 `httpseeds` `url|url`.
    #[arg(long, value_name = "URLS")]
    pub httpseeds: Option<String>,
    /// Remove `httpseeds`.
    #[arg(long, conflicts_with = "httpseeds")]
    pub no_httpseeds: bool,
    /// Set `comment`.
    #[arg(short = 'c', long)]
    pub comment: Option<String>,
    /// Remove `comment`.
    #[arg(long, conflicts_with = "comment")]
    pub no_comment: bool,
    /// Set `info.private = 1` (changes the info-hash).
    #[arg(long)]
    pub private: bool,
    /// Remove `info.private` (changes the info-hash).
    #[arg(long, conflicts_with = "private")]
    pub no_private: bool,
    /// Set `info.source` (changes the info-hash).
    #[arg(short = 's', long)]
    pub source: Option<String>,
    /// Remove `info.source` (changes the info-hash).
    #[arg(long, conflicts_with = "source")]
    pub no_source: bool,
    /// Set `info.name` (changes the info-hash).
    #[arg(long)]
    pub name: Option<String>,
    /// Remove `creation date`.
    #[arg(long)]
    pub no_creation_date: bool,
    /// Remove `created by`.
    #[arg(long)]
    pub no_created_by: bool,
    /// Write to this file instead of in place (one input only).
    #[arg(short = 'o', long, value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// Print what would change, write nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
}

pub fn run(args: &EditArgs) -> Result<(), CliError> {
    if args.output.is_some() && args.torrents.len() != 1 {
        return Err(CliError::Usage("--output needs exactly one torrent".into()));
    }
    if let Some(name) = &args.name {
        if let Some(reason) = path_rules::component_problem(name.as_bytes()) {
            return Err(CliError::Usage(format!(
                "cannot use {name:?} as a name: {reason}"
            )));
        }
    }
    let url_list: Vec<String> = args
        .url_list
        .iter()
        .flat_map(|u| u.split(','))
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_string)
        .collect();
    for_each(&args.torrents, "cyclone edit", |path| {
        let mut t = Editable::load(path)?;
        let mut changes: Vec<String> = Vec::new();
        let mut set = |t: &mut Editable, key: &str, value: Option<Owned>| {
            match value {
                Some(v) => t.set(key, v),
                None => t.remove(key),
            }
            changes.push(key.to_string());
        };
        if let Some(a) = &args.announce {
            set(
                &mut t,
                "announce",
                Some(Owned::Bytes(a.trim().as_bytes().to_vec())),
            );
        } else if args.no_announce {
            set(&mut t, "announce", None);
        }
        if let Some(tiers) = &args.announce_list {
            let tiers = url_lists::parse_tiers(tiers);
            set(
                &mut t,
                "announce-list",
                (!tiers.is_empty()).then(|| torrent_edit::tier_list(&tiers)),
            );
        } else if args.no_announce_list {
            set(&mut t, "announce-list", None);
        }
        if !url_list.is_empty() {
            set(
                &mut t,
                "url-list",
                Some(torrent_edit::string_list(&url_list)),
            );
        } else if args.no_url_list {
            set(&mut t, "url-list", None);
        }
        if let Some(seeds) = &args.httpseeds {
            let seeds = url_lists::parse_pipe_list(seeds);
            set(
                &mut t,
                "httpseeds",
                (!seeds.is_empty()).then(|| torrent_edit::string_list(&seeds)),
            );
        } else if args.no_httpseeds {
            set(&mut t, "httpseeds", None);
        }
        if let Some(c) = &args.comment {
            set(&mut t, "comment", Some(Owned::Bytes(c.as_bytes().to_vec())));
        } else if args.no_comment {
            set(&mut t, "comment", None);
        }
        if args.no_creation_date {
            set(&mut t, "creation date", None);
        }
        if args.no_created_by {
            set(&mut t, "created by", None);
        }
        let mut info_changes = Vec::new();
        if args.private {
            t.info_mut().insert("private", Owned::Int(1));
            info_changes.push("info.private");
        } else if args.no_private {
            t.info_mut().remove(b"private");
            info_changes.push("info.private");
        }
        if let Some(s) = &args.source {
            t.info_mut()
                .insert("source", Owned::Bytes(s.as_bytes().to_vec()));
            info_changes.push("info.source");
        } else if args.no_source {
            t.info_mut().remove(b"source");
            info_changes.push("info.source");
        }
        if let Some(n) = &args.name {
            let info = t.info_mut();
            info.insert("name", Owned::Bytes(n.as_bytes().to_vec()));
            if info.get(b"name.utf-8").is_some() {
                info.insert("name.utf-8", Owned::Bytes(n.as_bytes().to_vec()));
            }
            info_changes.push("info.name");
        }
        changes.extend(info_changes.iter().map(|s| s.to_string()));
        let saved = t.save(args.output.as_deref(), args.dry_run)?;
        let verb = match (args.dry_run, saved.changed) {
            (_, false) => "unchanged",
            (true, true) => "would change",
            (false, true) => "changed",
        };
        println!(
            "{}: {verb} ({})",
            path.display(),
            if changes.is_empty() {
                "no edits given".into()
            } else {
                changes.join(", ")
            }
        );
        if saved.old_hash != saved.new_hash {
            println!(
                "{}: info hash {} -> {}",
                path.display(),
                saved.old_hash,
                saved.new_hash
            );
        }
        Ok(())
    })
}
