//! Reloading the configuration (`SIGHUP`, `systemctl reload`): read, validate and compile
//! the files `meshgate run` was given; on any error the running config stays and the
//! reason is logged with `validate`'s messages and counted. Otherwise the new snapshot is
//! swapped in whole: new listener addresses are bound first (a port that cannot be bound
//! refuses the reload), then the generation is replaced (requests in flight finish on
//! theirs; unchanged clusters keep their state and pooled connections), then addresses no
//! longer configured stop accepting.

use super::Control;
use crate::config;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

impl Control {
    /// Reloads; the error says why the running config was kept.
    pub(crate) fn reload(&self) -> Result<u64, String> {
        let _one = self.reloading.lock().unwrap_or_else(|p| p.into_inner());
        if self.is_draining() {
            return Err("the gateway is stopping".into());
        }
        crate::notify::reloading();
        let started = Instant::now();
        let result = self.try_reload();
        self.telemetry.own.reloaded(result.is_ok());
        match &result {
            Ok(generation) => log::info!(
                "reload: generation {generation} serving ({} ms)",
                started.elapsed().as_millis()
            ),
            Err(e) => log::error!("reload refused, the running configuration stays: {e}"),
        }
        crate::notify::notify("READY=1");
        result
    }

    fn try_reload(&self) -> Result<u64, String> {
        let t0 = Instant::now();
        let mut checked = config::load_and_check_cached(
            &self.source.paths,
            &self.source.cli_labels,
            &self.source.parsed,
        );
        let labels = checked.config.instance_labels(&self.source.cli_labels);
        if let Err(d) = crate::telemetry::Settings::from_config(&checked.config, &labels) {
            checked.diagnostics.push(*d);
        }
        let errors: Vec<String> = checked
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .map(ToString::to_string)
            .collect();
        if !errors.is_empty() {
            for e in &errors {
                log::error!("{e}");
            }
            return Err(format!("{} error(s) in the configuration", errors.len()));
        }
        if super::start_only_fields(&checked.config) != self.source.start_only {
            log::warn!(
                "reload: MeshConfig accessLogFile, accessLogEncoding, accessLogFormat or adminAddress changed: they apply at the next start"
            );
        }
        let t1 = Instant::now();
        let snapshot = Arc::new(crate::snapshot::compile(&checked.config, &labels));
        let t2 = Instant::now();
        for n in &snapshot.notes {
            log::warn!("{n}");
        }
        let addresses: Vec<_> = snapshot.listeners.iter().map(|l| l.address).collect();
        let runtime = self
            .runtime
            .get()
            .ok_or("the gateway has not started yet")?;
        {
            let _in = runtime.enter();
            self.acceptors
                .add(&addresses)
                .map_err(|(addr, e)| format!("cannot listen on {addr}: {e}"))?;
        }
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        self.listeners.track(addresses.iter().copied());
        self.telemetry.adopt(&snapshot);
        let previous = self.shared.swap(Arc::new(self.registry.adopt(snapshot)));
        self.acceptors.retain(&addresses);
        // Reported once whole: removed ports are closed by now.
        self.telemetry.own.config_adopted(generation);
        log::info!(
            "reload: read and validated in {} ms, compiled in {} ms, applied in {} ms",
            (t1 - t0).as_millis(),
            (t2 - t1).as_millis(),
            t2.elapsed().as_millis()
        );
        // A large config takes a while to free (the previous generation, the parsed
        // documents): not on the reload's time.
        std::thread::spawn(move || drop((previous, checked)));
        Ok(generation)
    }
}
