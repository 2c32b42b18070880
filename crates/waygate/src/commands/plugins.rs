//! `waygate plugins list`.

use super::CmdResult;
use crate::cli::{Global, PluginsCommand};

pub fn run(g: &Global, cmd: PluginsCommand) -> CmdResult {
    match cmd {
        PluginsCommand::List => {
            let cfg = super::load_config(g)?.cfg;
            println!("{:<12} {:<8} description", "NAME", "ENABLED");
            for name in waygate_plugins::BUILTIN {
                let on = match name {
                    "demo" => cfg.plugins.demo.unwrap_or(true),
                    n => cfg.plugins.enabled.iter().any(|e| e == n),
                };
                let desc = match name {
                    "demo" => "echo, add, now, countdown, ask_name; a resource and a prompt",
                    _ => "the MCP conformance suite's fixture surface",
                };
                println!("{name:<12} {:<8} {desc}", if on { "yes" } else { "no" });
            }
            Ok(())
        }
    }
}
