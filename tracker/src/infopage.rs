//! The info page (`/`, `/index.html`): bttrack's layout (§3.6) with a totals row.

use crate::request::InfoHash;
use crate::swarm::SwarmCounts;

/// One table row.
pub struct Row {
    pub info_hash: InfoHash,
    pub counts: SwarmCounts,
    /// Name and total size, from allowed_dir (with show_names).
    pub name: Option<String>,
    pub size: Option<u64>,
}

/// bttrack's size format: B; integer KiB; integer MiB; GiB and TiB truncated to 2 decimals.
pub fn size_format(s: u64) -> String {
    if s < 1024 {
        format!("{s}B")
    } else if s < 1 << 20 {
        format!("{}KiB", s >> 10)
    } else if s < 1 << 30 {
        format!("{}MiB", s >> 20)
    } else if s < 1 << 40 {
        let h = s * 100 / (1 << 30);
        format!("{}.{:02}GiB", h / 100, h % 100)
    } else {
        let h = (s as u128 * 100 / (1u128 << 40)) as u64;
        format!("{}.{:02}TiB", h / 100, h % 100)
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn hex(h: &InfoHash) -> String {
    cyclone_metainfo::InfoHash(*h).to_hex()
}

/// Renders the page. `with_names`: allowed_dir + show_names layout; `allow_get`: names link to
/// `/file`; `favicon`: add the icon link; `server_time`: `YYYY-MM-DD HH:MM UTC`.
pub fn render(
    mut rows: Vec<Row>,
    with_names: bool,
    allow_get: bool,
    favicon: bool,
    server_time: &str,
) -> String {
    rows.sort_by(|a, b| (a.name.as_deref(), a.info_hash).cmp(&(b.name.as_deref(), b.info_hash)));
    let mut s = String::with_capacity(1024 + rows.len() * 256);
    s.push_str("<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.1//EN\" \"http://www.w3.org/TR/xhtml11/DTD/xhtml11.dtd\">\n");
    s.push_str("<html><head><title>BitTorrent download info</title>\n");
    if favicon {
        s.push_str("<link rel=\"shortcut icon\" href=\"/favicon.ico\" />\n");
    }
    s.push_str("</head>\n<body>\n<h3>BitTorrent download info</h3>\n<ul>\n");
    s.push_str(&format!(
        "<li><strong>tracker version:</strong> cyclone {} (bttrack-compatible)</li>\n<li><strong>server time:</strong> {server_time}</li>\n</ul>\n",
        env!("CARGO_PKG_VERSION")
    ));
    if rows.is_empty() {
        s.push_str("<p>not tracking any files yet...</p>\n");
    } else {
        s.push_str("<table summary=\"files\" border=\"1\">\n");
        if with_names {
            s.push_str("<tr><th>info hash</th><th>torrent name</th><th align=\"right\">size</th><th align=\"right\">complete</th><th align=\"right\">downloading</th><th align=\"right\">downloaded</th><th align=\"right\">transferred</th></tr>\n");
        } else {
            s.push_str("<tr><th>info hash</th><th align=\"right\">complete</th><th align=\"right\">downloading</th><th align=\"right\">downloaded</th></tr>\n");
        }
        let (mut tc, mut td, mut tn, mut tsize, mut ttrans) = (0u64, 0u64, 0u64, 0u64, 0u128);
        for r in &rows {
            let c = r.counts;
            tc += c.complete;
            td += c.incomplete;
            tn += c.downloaded;
            let h = hex(&r.info_hash);
            if with_names {
                let size = r.size.unwrap_or(0);
                tsize += size;
                let trans = u128::from(size) * u128::from(c.downloaded);
                ttrans += trans;
                let name = escape(r.name.as_deref().unwrap_or(""));
                let name = if allow_get {
                    let q: String = r.info_hash.iter().map(|b| format!("%{b:02X}")).collect();
                    format!("<a href=\"/file?info_hash={q}\">{name}</a>")
                } else {
                    name
                };
                s.push_str(&format!(
                    "<tr><td><code>{h}</code></td><td>{name}</td><td align=\"right\">{}</td><td align=\"right\">{}</td><td align=\"right\">{}</td><td align=\"right\">{}</td><td align=\"right\">{}</td></tr>\n",
                    size_format(size),
                    c.complete,
                    c.incomplete,
                    c.downloaded,
                    size_format(trans.min(u128::from(u64::MAX)) as u64)
                ));
            } else {
                s.push_str(&format!(
                    "<tr><td><code>{h}</code></td><td align=\"right\"><code>{}</code></td><td align=\"right\"><code>{}</code></td><td align=\"right\"><code>{}</code></td></tr>\n",
                    c.complete, c.incomplete, c.downloaded
                ));
            }
        }
        let n = rows.len();
        if with_names {
            s.push_str(&format!(
                "<tr><td align=\"right\" colspan=\"2\">{n} files</td><td align=\"right\">{}</td><td align=\"right\">{tc}</td><td align=\"right\">{td}</td><td align=\"right\">{tn}</td><td align=\"right\">{}</td></tr>\n",
                size_format(tsize),
                size_format(ttrans.min(u128::from(u64::MAX)) as u64)
            ));
        } else {
            s.push_str(&format!(
                "<tr><td align=\"right\">{n} files</td><td align=\"right\">{tc}</td><td align=\"right\">{td}</td><td align=\"right\">{tn}</td></tr>\n"
            ));
        }
        s.push_str("</table>\n<ul>\n<li><em>info hash:</em> SHA1 hash of the \"info\" section of the metainfo (*.torrent)</li>\n");
        s.push_str(
            "<li><em>complete:</em> number of connected clients with the complete file</li>\n",
        );
        s.push_str(
            "<li><em>downloading:</em> number of connected clients still downloading</li>\n",
        );
        s.push_str("<li><em>downloaded:</em> reported complete downloads</li>\n");
        if with_names {
            s.push_str("<li><em>transferred:</em> torrent size * total downloaded (does not include partial transfers)</li>\n");
        }
        s.push_str("</ul>\n");
    }
    s.push_str("</body>\n</html>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_like_bttrack() {
        assert_eq!(size_format(1000), "1000B");
        assert_eq!(size_format(2048), "2KiB");
        assert_eq!(size_format(5 << 20), "5MiB");
        assert_eq!(size_format((1 << 30) + (1 << 29)), "1.50GiB");
        assert_eq!(size_format(3 << 40), "3.00TiB");
    }

    #[test]
    fn totals_row_counts_files() {
        let row = |b: u8, c: u64| Row {
            info_hash: [b; 20],
            counts: SwarmCounts {
                complete: c,
                incomplete: 1,
                downloaded: 2,
            },
            name: None,
            size: None,
        };
        let page = render(
            vec![row(1, 1), row(2, 2)],
            false,
            false,
            false,
            "2026-01-01 00:00 UTC",
        );
        assert!(page.contains("2 files</td><td align=\"right\">3</td><td align=\"right\">2</td><td align=\"right\">4</td>"), "{page}");
        assert!(render(vec![], false, false, false, "x").contains("not tracking any files yet..."));
    }
}
