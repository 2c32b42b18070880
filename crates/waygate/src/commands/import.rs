//! `waygate import FILE`: print the upstreams, the diff against the current config and the
//! lossiness report; unless --dry-run, merge them into the config file (backup kept) and
//! snapshot it.

use std::time::Duration;

use super::CmdResult;
use crate::cli::{Global, ImportArgs};
use crate::config::{FileConfig, Upstream};
use crate::import;

pub fn run(g: &Global, args: ImportArgs) -> CmdResult {
    if !import::FORMATS.contains(&args.from.as_str()) {
        return Err(format!(
            "unknown --from {:?}; expected one of {}",
            args.from,
            import::FORMATS.join(", ")
        )
        .into());
    }
    let imported = import::import(&args.file, &args.from)?;
    let layered = super::load_config(g)?;
    let path = layered
        .path
        .clone()
        .unwrap_or_else(|| super::data_dir(g).join("waygate.toml"));
    // Merge into the file as written (not the env-overridden view), keeping its other keys.
    let mut file: FileConfig = match &layered.raw {
        Some(raw) => toml::from_str(raw).unwrap_or_else(|_| layered.cfg.clone()),
        None => FileConfig {
            version: Some(crate::config::CURRENT_VERSION),
            ..Default::default()
        },
    };
    println!("# source: {} ({} format)", args.file.display(), imported.format);
    println!("# target: {}", path.display());
    println!("# diff:");
    for u in &imported.upstreams {
        let mark = match file.upstreams.iter().find(|o| o.name == u.name) {
            None => "+ new      ",
            Some(o) if o == u => "= unchanged",
            Some(_) => "~ replaced ",
        };
        println!("#   {mark} upstream {} ({})", u.name, describe(u));
    }
    print!("{}", import::report(&imported));

    let mut ok = true;
    if args.verify {
        let rt = super::runtime()?;
        let needs_store = imported.upstreams.iter().any(|u| {
            u.env
                .values()
                .chain(u.headers.values())
                .any(|v| v.contains("${secret:"))
        });
        let store = if needs_store {
            let l = super::load_config(g)?;
            Some(rt.block_on(super::open_store(g, &l))?)
        } else {
            None
        };
        let progress = super::progress::Progress::new(imported.upstreams.len() as u64, "verifying");
        for u in &imported.upstreams {
            progress.working_on(&u.name);
            let line = match rt.block_on(import::verify::verify(u, Duration::from_secs(20), store.as_ref())) {
                Ok(tools) => format!("# verify {}: ok, {} tool(s): {}", u.name, tools.len(), tools.join(", ")),
                Err(e) if u.transport == "sse" => format!("# verify {}: skipped ({e})", u.name),
                Err(e) => {
                    ok = false;
                    format!("# verify {}: FAILED: {e}", u.name)
                }
            };
            progress.done(&line);
        }
        progress.finish();
    }
    for u in imported.upstreams {
        file.upstreams.retain(|o| o.name != u.name);
        file.upstreams.push(u);
    }
    file.version = Some(crate::config::CURRENT_VERSION);
    let text = toml::to_string_pretty(&file)?;
    println!("\n{text}");
    if args.dry_run {
        println!("# dry run: nothing written");
        return Ok(());
    }
    if !ok {
        return Err(
            "verification failed; nothing written (use --dry-run to inspect, or fix the failing upstream)".into(),
        );
    }
    // Validate what we are about to write.
    let tmp = path.with_extension("toml.import");
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&tmp, &text)?;
    if let Err(e) = crate::config::layers_load(Some(&tmp), &[]) {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!("the merged configuration does not validate: {e}").into());
    }
    if path.exists() {
        std::fs::copy(&path, path.with_extension("toml.bak"))?;
    }
    std::fs::rename(&tmp, &path)?;
    super::runtime()?.block_on(async {
        let store = super::open_store(g, &layered).await?;
        store.snapshot_config("import", &text).await?;
        Ok::<_, Box<dyn std::error::Error>>(())
    })?;
    println!("# written to {} (previous file kept as .bak)", path.display());
    Ok(())
}

fn describe(u: &Upstream) -> String {
    match (&u.command, &u.url) {
        (Some(c), _) => format!("stdio: {c} {}", u.args.join(" ")).trim_end().to_string(),
        (None, Some(url)) => format!("{}: {url}", u.transport),
        _ => u.transport.clone(),
    }
}
