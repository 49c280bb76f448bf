//! The units pass `systemd-analyze verify` and `systemd-analyze security` (exposure at
//! most 1.5), and the Debian package (`[package.metadata.deb]`) installs them disabled,
//! with the binary and the configuration where they look for them. The systemd-analyze
//! tests are skipped with a message where it is not installed, except in CI (env `CI`
//! set), where a missing tool fails the test so the check cannot vanish.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const SERVICES: [&str; 2] = ["cp-recon.service", "cp-recon-daemon.service"];
const UNITS: [&str; 3] = [
    "cp-recon.service",
    "cp-recon.timer",
    "cp-recon-daemon.service",
];
const MAX_EXPOSURE: f64 = 1.5;

fn units_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd")
}

/// Whether to run: false (with a message) when the tool is missing outside CI.
fn systemd_analyze_available(test: &str) -> bool {
    let found = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "systemd-analyze is required in CI (install the systemd package)"
        );
        eprintln!("skipped {test}: systemd-analyze is not on PATH");
    }
    found
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("systemd-analyze runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The number in "→ Overall exposure level for X: 1.1 OK".
fn exposure(report: &str) -> Option<f64> {
    let line = report
        .lines()
        .find(|l| l.contains("Overall exposure level"))?;
    let after_colon = line.rsplit_once(": ")?.1;
    after_colon.split_whitespace().next()?.parse().ok()
}

#[test]
fn each_service_has_an_exposure_level_of_at_most_one_and_a_half() {
    if !systemd_analyze_available("the exposure check") {
        return;
    }
    for unit in SERVICES {
        let out = run(Command::new("systemd-analyze")
            .args(["security", "--offline=true", "--no-pager"])
            .arg(units_dir().join(unit)));
        let report = text(&out);
        let level =
            exposure(&report).unwrap_or_else(|| panic!("no exposure level for {unit}:\n{report}"));
        eprintln!("{unit}: exposure {level}");
        assert!(
            level <= MAX_EXPOSURE,
            "{unit}: exposure {level} > {MAX_EXPOSURE}\n{report}"
        );
    }
}

#[test]
fn the_units_verify_without_any_complaint() {
    if !systemd_analyze_available("the verify check") {
        return;
    }
    // verify checks that ExecStart's binary exists, so the units are checked in a
    // scratch root: the host's system units (for targets such as sysinit.target), these
    // units under /etc/systemd/system, and a stub at /usr/bin/cp-recon (where the
    // Debian package installs the binary).
    let root = tempfile::tempdir().expect("tempdir");
    let r = root.path();
    let system_units = ["/usr/lib/systemd/system", "/lib/systemd/system"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.is_dir())
        .expect("the host's system unit directory");
    std::fs::create_dir_all(r.join("usr/lib/systemd")).expect("mkdir");
    let copied = run(Command::new("cp")
        .arg("-a")
        .arg(system_units)
        .arg(r.join("usr/lib/systemd/system")));
    assert!(copied.status.success(), "{}", text(&copied));
    let etc = r.join("etc/systemd/system");
    std::fs::create_dir_all(&etc).expect("mkdir");
    for unit in UNITS {
        std::fs::copy(units_dir().join(unit), etc.join(unit)).expect("copy unit");
    }
    let bin = r.join("usr/bin");
    std::fs::create_dir_all(&bin).expect("mkdir");
    std::fs::write(bin.join("cp-recon"), "#!/bin/sh\n").expect("stub");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(bin.join("cp-recon"), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
    }

    let out = run(Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(format!("--root={}", r.display()))
        .args(UNITS));
    let report = text(&out);
    assert!(out.status.success(), "verify failed:\n{report}");
    // Unknown keys and similar are only warnings (exit 0); clean means silent.
    assert!(report.trim().is_empty(), "verify complained:\n{report}");
}

#[test]
fn the_exposure_level_is_read_from_the_report_line() {
    let line = "→ Overall exposure level for cp-recon.service: 1.1 OK 🙂";
    assert_eq!(exposure(line), Some(1.1));
    assert_eq!(exposure("nothing here"), None);
}

/// `[package.metadata.deb]` in Cargo.toml, as cargo-deb reads it.
fn deb_metadata() -> toml::Table {
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
            .expect("read Cargo.toml");
    let manifest: toml::Table = toml::from_str(&manifest).expect("parse Cargo.toml");
    manifest["package"]["metadata"]["deb"]
        .as_table()
        .expect("[package.metadata.deb]")
        .clone()
}

/// The asset from `source`: where the package installs it (an absolute path) and its
/// mode.
fn asset(deb: &toml::Table, source: &str) -> (String, String) {
    let asset = deb["assets"]
        .as_array()
        .expect("assets")
        .iter()
        .map(|a| a.as_array().expect("an asset is [source, dest, mode]"))
        .find(|a| a[0].as_str() == Some(source))
        .unwrap_or_else(|| panic!("no asset from {source}"));
    let dest = asset[1].as_str().expect("dest");
    let mode = asset[2].as_str().expect("mode").to_owned();
    let file = Path::new(source).file_name().expect("file name");
    if dest.ends_with('/') {
        (format!("/{dest}{}", file.to_string_lossy()), mode)
    } else {
        (format!("/{dest}"), mode)
    }
}

#[test]
fn the_debian_package_installs_every_unit_disabled_with_what_it_runs() {
    let deb = deb_metadata();
    let unit_dir = "usr/lib/systemd/system/";

    // Every unit is in the package: cargo-deb's systemd-units takes cp-recon.<type> from
    // its unit-scripts folder; the others are assets.
    let units = &deb["systemd-units"];
    assert_eq!(
        units["enable"].as_bool(),
        Some(false),
        "units enabled on install"
    );
    assert_eq!(
        units["start"].as_bool(),
        Some(false),
        "units started on install"
    );
    let scripts = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(units["unit-scripts"].as_str().expect("unit-scripts"));
    let mut packaged: Vec<String> = std::fs::read_dir(&scripts)
        .expect("unit-scripts folder")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|name| name == "cp-recon.service" || name == "cp-recon.timer")
        .collect();
    for entry in deb["assets"].as_array().expect("assets") {
        let entry = entry.as_array().expect("an asset is [source, dest, mode]");
        if entry[1].as_str() == Some(unit_dir) {
            let source = Path::new(entry[0].as_str().expect("source"));
            packaged.push(
                source
                    .file_name()
                    .expect("name")
                    .to_string_lossy()
                    .into_owned(),
            );
        }
    }
    packaged.sort();
    let mut expected: Vec<String> = UNITS.iter().map(|u| (*u).to_owned()).collect();
    expected.sort();
    assert_eq!(packaged, expected);

    // The services run the packaged binary on the packaged configuration, which stays
    // root's alone: it reaches the dynamic user as a credential.
    let (binary, _) = asset(&deb, "target/release/cp-recon");
    let (config, config_mode) = asset(&deb, "config.toml");
    assert_eq!(binary, "/usr/bin/cp-recon");
    assert_eq!(config, "/etc/cp-recon/config.toml");
    assert_eq!(config_mode, "600");
    for unit in SERVICES {
        let text = std::fs::read_to_string(units_dir().join(unit)).expect("read unit");
        let exec = text
            .lines()
            .find_map(|l| l.strip_prefix("ExecStart="))
            .unwrap_or_else(|| panic!("{unit}: no ExecStart="));
        assert!(
            exec.starts_with(&format!("{binary} ")),
            "{unit}: ExecStart={exec} does not run {binary}"
        );
        assert!(
            exec.contains("--config ${CREDENTIALS_DIRECTORY}/config.toml"),
            "{unit}: ExecStart={exec} does not read the configuration credential"
        );
        let load = format!("LoadCredential=config.toml:{config}");
        assert!(text.lines().any(|l| l == load), "{unit}: no {load}");
    }
}
