//! Config providers: values taken from files and the environment when the broker starts
//! (Kafka's `ConfigProvider`s and `ConfigTransformer`; KIP-297, KIP-632 for directories, KIP-887
//! for the environment, KIP-993 for `allowed.paths`).
//!
//! ```properties
//! config.providers=dir,file,env
//! config.providers.dir.class=org.apache.kafka.common.config.provider.DirectoryConfigProvider
//! config.providers.dir.param.allowed.paths=/etc/sluice
//! config.providers.file.class=org.apache.kafka.common.config.provider.FileConfigProvider
//! config.providers.env.class=org.apache.kafka.common.config.provider.EnvVarConfigProvider
//! advertised.listeners=EXTERNAL://${env:HOST_IP}:${dir:/etc/sluice/external:demo-0}
//! ssl.keystore.password=${file:/etc/sluice/secrets.properties:keystore.password}
//! ```
//!
//! A reference is `${provider:path:key}`, or `${provider:key}` without a path: the provider name
//! runs to the first `:`, the path to the next one, the key to the closing `}` (so a key may hold
//! `:`, a path may not). Sluice has Kafka's three built-in classes:
//!
//! * `FileConfigProvider`: `${name:FILE:KEY}` is the value of `KEY` in the properties file `FILE`;
//! * `DirectoryConfigProvider`: `${name:DIR:KEY}` is the whole content of the file `DIR/KEY`
//!   (a Kubernetes ConfigMap or Secret mounted as a directory);
//! * `EnvVarConfigProvider`: `${name:VAR}` is the environment variable `VAR`.
//!
//! `config.providers.<name>.param.allowed.paths` (comma-separated absolute paths that exist)
//! limits the file and directory providers to paths under them. Other parameters are accepted and
//! ignored, as Kafka's providers ignore parameters they do not know, except the environment
//! provider's `allowlist.pattern`: Sluice has no regular expressions, and ignoring a restriction
//! would widen access, so any pattern but Kafka's default `.*` is refused.
//!
//! Differences from Kafka, both so that a mistake stops start-up instead of leaving `${...}` in a
//! value: a reference to a declared provider that cannot be resolved (missing file or key, unset
//! variable, path outside `allowed.paths`) is an error naming the config key, where Kafka leaves
//! the reference as it is; and so is a provider named in `config.providers` without a `.class`.
//! As in Kafka, a reference to a provider not in `config.providers` is left as it is, values are
//! not resolved again after substitution, and the `config.providers*` keys themselves are not
//! resolved. Only the static configuration is resolved (file, environment, command line), not
//! configs altered at run time.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use super::ConfigError;

pub const FILE_CLASS: &str = "org.apache.kafka.common.config.provider.FileConfigProvider";
pub const DIRECTORY_CLASS: &str = "org.apache.kafka.common.config.provider.DirectoryConfigProvider";
pub const ENV_VAR_CLASS: &str = "org.apache.kafka.common.config.provider.EnvVarConfigProvider";

const PREFIX: &str = "config.providers";

/// Whether `key` configures config providers (`config.providers`, `config.providers.*`).
pub fn is_provider_key(key: &str) -> bool {
    key.strip_prefix(PREFIX).is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    File,
    Directory,
    EnvVar,
}

impl Class {
    fn parse(key: &str, name: &str) -> Result<Class, ConfigError> {
        match name {
            FILE_CLASS => Ok(Class::File),
            DIRECTORY_CLASS => Ok(Class::Directory),
            ENV_VAR_CLASS => Ok(Class::EnvVar),
            _ => Err(ConfigError::Invalid(format!(
                "{key}: Sluice has no config provider class '{name}'; it has {FILE_CLASS}, \
                 {DIRECTORY_CLASS} and {ENV_VAR_CLASS}"
            ))),
        }
    }
}

/// The `config.providers*` settings as given.
#[derive(Clone, Debug, Default)]
pub struct ConfigProviders {
    /// `config.providers`: the declared names.
    names: Vec<String>,
    /// `config.providers.<name>.class`.
    classes: BTreeMap<String, Class>,
    /// `config.providers.<name>.param.<param>`, by name and parameter.
    params: BTreeMap<(String, String), String>,
}

/// One declared provider, ready to look values up.
struct Provider {
    class: Class,
    /// `allowed.paths`, normalised; `None` allows every path.
    allowed: Option<Vec<PathBuf>>,
}

impl ConfigProviders {
    /// Records one `config.providers*` setting; a class Sluice does not have is refused here.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        let value = value.trim();
        let rest = key.strip_prefix(PREFIX).unwrap_or(key);
        if rest.is_empty() {
            self.names = super::listeners::split_list(value).map(Into::into).collect();
        } else if let Some((name, param)) = rest[1..].split_once(".param.") {
            self.params.insert((name.into(), param.into()), value.into());
        } else if let Some(name) = rest[1..].strip_suffix(".class") {
            self.classes.insert(name.into(), Class::parse(key, value)?);
        } else {
            return Err(ConfigError::Invalid(format!(
                "unknown configuration '{key}': expected config.providers, \
                 config.providers.<name>.class or config.providers.<name>.param.<param>"
            )));
        }
        Ok(())
    }

    /// `config.providers` as Kafka shows it.
    pub fn names(&self) -> String {
        self.names.join(",")
    }

    /// Checks every declared provider, as Kafka does when it creates them at start-up, whether
    /// or not a value refers to it.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.names.iter().try_for_each(|name| self.provider(name).map(drop))
    }

    /// The provider declared as `name`, `None` if `config.providers` does not name it.
    fn provider(&self, name: &str) -> Result<Option<Provider>, ConfigError> {
        if !self.names.iter().any(|n| n == name) {
            return Ok(None);
        }
        let class = *self.classes.get(name).ok_or_else(|| {
            ConfigError::Invalid(format!(
                "{PREFIX} names '{name}' but {PREFIX}.{name}.class is not set"
            ))
        })?;
        let param = |p: &str| self.params.get(&(name.to_string(), p.to_string()));
        let allowed = match param("allowed.paths") {
            Some(paths) if class != Class::EnvVar => {
                Some(allowed_paths(&format!("{PREFIX}.{name}.param.allowed.paths"), paths)?)
            }
            _ => None,
        };
        match param("allowlist.pattern") {
            Some(pattern) if class == Class::EnvVar && pattern != ".*" => {
                return Err(ConfigError::Invalid(format!(
                    "{PREFIX}.{name}.param.allowlist.pattern: Sluice cannot apply a pattern \
                     ('{pattern}'); remove it (every variable is then readable) or use the \
                     directory provider"
                )));
            }
            _ => {}
        }
        Ok(Some(Provider { class, allowed }))
    }

    /// `value` of config `key` with its references to declared providers replaced.
    pub fn resolve<'v>(&self, key: &str, value: &'v str) -> Result<Cow<'v, str>, ConfigError> {
        let mut out = String::new();
        let mut done = 0; // `value[..done]` is already in `out`, replaced
        let mut from = 0;
        while let Some(r) = next_reference(value, from) {
            from = r.end;
            let Some(provider) = self.provider(r.provider)? else { continue };
            let found = provider.get(r.path, r.key).map_err(|reason| ConfigError::Unresolved {
                key: key.into(),
                reference: value[r.start..r.end].into(),
                reason,
            })?;
            out.push_str(&value[done..r.start]);
            out.push_str(&found);
            done = r.end;
        }
        if done == 0 {
            return Ok(Cow::Borrowed(value));
        }
        out.push_str(&value[done..]);
        Ok(Cow::Owned(out))
    }
}

/// One `${provider:[path:]key}` in a value, `start..end` being all of it.
struct Reference<'v> {
    start: usize,
    end: usize,
    provider: &'v str,
    path: &'v str,
    key: &'v str,
}

/// The first reference in `value` at or after byte `from`. Like Kafka's pattern, `${` starts one
/// if a `:` comes before the next `}`.
fn next_reference(value: &str, mut from: usize) -> Option<Reference<'_>> {
    loop {
        let start = from + value[from..].find("${")?;
        let body_start = start + 2;
        let body_len = value[body_start..].find('}')?;
        let body = &value[body_start..body_start + body_len];
        if let Some((provider, rest)) = body.split_once(':') {
            let (path, key) = rest.split_once(':').unwrap_or(("", rest));
            let end = body_start + body_len + 1;
            return Some(Reference { start, end, provider, path, key });
        }
        from = start + 1;
    }
}

impl Provider {
    /// The value of `key` at `path`, or why there is none.
    fn get(&self, path: &str, key: &str) -> Result<String, String> {
        match self.class {
            Class::EnvVar if !path.is_empty() => {
                Err(format!("the environment provider takes no path ('{path}'): use ${{name:VAR}}"))
            }
            Class::EnvVar => match std::env::var(key) {
                Ok(v) => Ok(v),
                Err(std::env::VarError::NotPresent) => {
                    Err(format!("environment variable {key} is not set"))
                }
                Err(e) => Err(format!("environment variable {key}: {e}")),
            },
            Class::File => {
                let file = self.allowed_path(path)?;
                let text = std::fs::read_to_string(&file)
                    .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
                // The last line that sets it, as Java's Properties.
                super::property_lines(&text)
                    .filter_map(|(_, k, v)| v.filter(|_| k == key))
                    .last()
                    .map(str::to_string)
                    .ok_or_else(|| format!("{} has no key '{key}'", file.display()))
            }
            Class::Directory => {
                let dir = self.allowed_path(path)?;
                // As Kafka: only a regular file directly in the directory (a symbolic link to
                // one counts, as in Kubernetes volumes), named by the key.
                let file = dir.join(key);
                if key.is_empty() || key.contains('/') || !file.is_file() {
                    return Err(format!("{} has no file '{key}'", dir.display()));
                }
                // The whole content, with no trimming, as Kafka does (a trailing newline is kept
                // here). `BrokerConfig::set` then trims the value as a whole, and list values
                // trim each item, as Kafka's parsing does: so a file ending in a newline is fine
                // at the end of a value or of a list item, as it is in Kafka.
                std::fs::read_to_string(&file)
                    .map_err(|e| format!("cannot read {}: {e}", file.display()))
            }
        }
    }

    /// `path`, if `allowed.paths` lets this provider read it.
    fn allowed_path(&self, path: &str) -> Result<PathBuf, String> {
        if path.is_empty() {
            return Err("a path is needed: ${name:path:key}".into());
        }
        let Some(allowed) = &self.allowed else { return Ok(PathBuf::from(path)) };
        let normal = normalise(Path::new(path));
        if allowed.iter().any(|a| normal.starts_with(a)) {
            return Ok(normal);
        }
        let list: Vec<String> = allowed.iter().map(|a| a.display().to_string()).collect();
        Err(format!("{path} is outside allowed.paths ({})", list.join(",")))
    }
}

/// Parses `allowed.paths`: as Kafka, each must be absolute and exist.
fn allowed_paths(key: &str, value: &str) -> Result<Vec<PathBuf>, ConfigError> {
    let mut out = Vec::new();
    for p in super::listeners::split_list(value) {
        let path = normalise(Path::new(p));
        if !path.is_absolute() {
            return Err(ConfigError::Invalid(format!("{key}: {p} is not an absolute path")));
        }
        if !path.exists() {
            return Err(ConfigError::Invalid(format!("{key}: {p} does not exist")));
        }
        out.push(path);
    }
    Ok(out)
}

/// `path` with `.` and `..` taken out without looking at the file system (Java's `normalize`),
/// so that `/etc/sluice/../passwd` is not under `/etc/sluice`.
fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => match out.components().next_back() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                Some(Component::RootDir) => {}
                _ => out.push(".."),
            },
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::BrokerConfig;
    use super::*;

    /// Properties declaring `dir`, `file` and `env` providers.
    fn declare(allowed: Option<&Path>) -> String {
        let mut props = format!(
            "config.providers=dir,file,env\nconfig.providers.dir.class={DIRECTORY_CLASS}\n\
             config.providers.file.class={FILE_CLASS}\nconfig.providers.env.class={ENV_VAR_CLASS}\n"
        );
        if let Some(a) = allowed {
            props += &format!(
                "config.providers.dir.param.allowed.paths={0}\n\
                 config.providers.file.param.allowed.paths={0}\n",
                a.display()
            );
        }
        props
    }

    fn config(props: &str) -> Result<BrokerConfig, ConfigError> {
        let mut c = BrokerConfig::default();
        c.apply_properties(props)?;
        Ok(c)
    }

    #[test]
    fn directory_provider_gives_a_files_whole_content() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        std::fs::write(dir.path().join("demo-0"), "30001\n").unwrap();
        std::fs::write(dir.path().join("rack"), "rack-a\n").unwrap();
        let c = config(&format!(
            "{}listeners=PLAINTEXT://:9092,EXTERNAL://:9094\n\
             advertised.listeners=PLAINTEXT://h:9092,EXTERNAL://10.0.0.1:${{dir:{d}:demo-0}}\n\
             broker.rack=${{dir:{d}:rack}}\n",
            declare(None)
        ))
        .unwrap();
        let external = c.net.advertised.iter().find(|l| l.name == "EXTERNAL").unwrap();
        assert_eq!((external.host.as_str(), external.port), ("10.0.0.1", 30001));
        assert_eq!(c.rack.as_deref(), Some("rack-a"));
        // The content is not trimmed (as in Kafka); only the whole value is.
        let value = format!("<${{dir:{d}:demo-0}}>");
        assert_eq!(c.providers.resolve("k", &value).unwrap(), "<30001\n>");
    }

    #[test]
    fn file_provider_reads_a_key_of_a_properties_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("external.properties");
        std::fs::write(&file, "# ports\nport = 1\n! other\nrack:r1\nid 7\nport=30002\n").unwrap();
        let f = file.display();
        let c = config(&format!(
            "{}broker.rack=${{file:{f}:rack}}\nnum.partitions=${{file:{f}:id}}\n\
             advertised.listeners=PLAINTEXT://h:${{file:{f}:port}}\n",
            declare(None)
        ))
        .unwrap();
        assert_eq!(c.rack.as_deref(), Some("r1"));
        assert_eq!(c.num_partitions, 7);
        assert_eq!(c.net.advertised[0].port, 30002, "the last line of a key wins");
    }

    #[test]
    fn env_provider_reads_a_variable_and_takes_no_path() {
        let path = std::env::var("PATH").expect("PATH is set");
        let c = config(&format!("{}broker.rack=${{env:PATH}}\n", declare(None))).unwrap();
        assert_eq!(c.rack.as_deref(), Some(path.trim()));
        let e = config(&format!("{}broker.rack=${{env:SLUICE_SURELY_UNSET_42}}", declare(None)))
            .unwrap_err()
            .to_string();
        assert!(e.contains("SLUICE_SURELY_UNSET_42 is not set"), "{e}");
        let e = config(&format!("{}broker.rack=${{env:/x:PATH}}", declare(None)))
            .unwrap_err()
            .to_string();
        assert!(e.contains("takes no path"), "{e}");
        let pattern =
            format!("{}config.providers.env.param.allowlist.pattern=^SLUICE_", declare(None));
        assert!(config(&pattern).unwrap().validate().unwrap_err().to_string().contains("pattern"));
    }

    #[test]
    fn providers_serve_lines_before_their_declaration() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("id"), "4").unwrap();
        let c = config(&format!("node.id=${{dir:{}:id}}\n{}", dir.path().display(), declare(None)))
            .unwrap();
        assert_eq!(c.node_id, 4);
        assert_eq!(c.to_props()["config.providers"], "dir,file,env");
        assert_eq!(BrokerConfig::default().to_props()["config.providers"], "");
    }

    #[test]
    fn command_line_values_resolve_with_the_files_providers() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("demo-0"), "30001").unwrap();
        let d = dir.path().display();
        // The operator's case: the file declares, the command line refers.
        let mut c = config(&declare(None)).unwrap();
        let advertised = format!("PLAINTEXT://h:9092,EXTERNAL://10.0.0.1:${{dir:{d}:demo-0}}");
        c.apply_all([("advertised.listeners", advertised.as_str())]).unwrap();
        assert_eq!(c.net.advertised[1].port, 30001);
        // A provider declared by `--set` serves the flags applied before it too.
        let mut c = BrokerConfig::default();
        c.apply_all([
            ("broker.rack", format!("${{d2:{d}:demo-0}}")),
            ("config.providers.d2.class", DIRECTORY_CLASS.into()),
            ("config.providers", "d2".into()),
        ])
        .unwrap();
        assert_eq!(c.rack.as_deref(), Some("30001"));
    }

    #[test]
    fn a_reference_to_an_undeclared_provider_is_left_as_is() {
        // As Kafka: not named in config.providers (even with a class), or no `:` at all.
        let c = config(&format!(
            "config.providers.vault.class={FILE_CLASS}\n\
             broker.rack=${{vault:/secret:key}}-${{nocolon}}-${{env:PATH}}\n"
        ))
        .unwrap();
        assert_eq!(c.rack.as_deref(), Some("${vault:/secret:key}-${nocolon}-${env:PATH}"));
        let v = c.providers.resolve("k", "${a}${b").unwrap();
        assert!(matches!(v, Cow::Borrowed("${a}${b")));
    }

    #[test]
    fn an_unresolvable_reference_names_the_key_and_the_reference() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        std::fs::write(dir.path().join("p.properties"), "a=1\n").unwrap();
        for (reference, reason) in [
            (format!("${{dir:{d}:demo-9}}"), format!("{d} has no file 'demo-9'")),
            (format!("${{dir:{d}/nowhere:demo-0}}"), "has no file 'demo-0'".into()),
            (format!("${{dir:{d}:../demo-0}}"), "has no file '../demo-0'".into()),
            (format!("${{file:{d}/p.properties:b}}"), "p.properties has no key 'b'".into()),
            (format!("${{file:{d}/none.properties:a}}"), "cannot read".into()),
            ("${file:a}".into(), "a path is needed".into()),
        ] {
            let e = config(&format!("{}broker.rack=x${reference}\n", declare(None)))
                .unwrap_err()
                .to_string();
            assert!(e.starts_with(&format!("broker.rack: cannot resolve {reference}: ")), "{e}");
            assert!(e.contains(&reason), "{e}");
        }
    }

    #[test]
    fn only_kafkas_provider_classes_and_keys_are_accepted() {
        let e = config("config.providers.vault.class=io.example.VaultConfigProvider")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("config.providers.vault.class: Sluice has no config provider class")
                && e.contains(FILE_CLASS)
                && e.contains(DIRECTORY_CLASS)
                && e.contains(ENV_VAR_CLASS),
            "{e}"
        );
        let e = config("config.providers.dir.clas=x").unwrap_err().to_string();
        assert!(e.contains("unknown configuration 'config.providers.dir.clas'"), "{e}");
        // Parameters a provider does not know are accepted, as Kafka's providers ignore them.
        config("config.providers.dir.param.some.param=1").unwrap();
        // Named without a class: refused when used, and at start-up.
        let c = config("config.providers=dir").unwrap();
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("config.providers.dir.class is not set"), "{e}");
        let e = config("config.providers=dir\nbroker.rack=${dir:/x:y}").unwrap_err().to_string();
        assert!(e.contains("config.providers.dir.class is not set"), "{e}");
    }

    #[test]
    fn allowed_paths_limit_the_file_and_directory_providers() {
        let root = tempfile::tempdir().unwrap();
        let (ok, other) = (root.path().join("ok"), root.path().join("other"));
        for d in [&ok, &other] {
            std::fs::create_dir(d).unwrap();
            std::fs::write(d.join("k"), "v").unwrap();
            std::fs::write(d.join("p.properties"), "k=v").unwrap();
        }
        let c = config(&declare(Some(&ok))).unwrap();
        c.validate().unwrap();
        let resolve = |v: String| c.providers.resolve("broker.rack", &v).map(|v| v.into_owned());
        let (o, x) = (ok.display(), other.display());
        assert_eq!(resolve(format!("${{dir:{o}:k}}")).unwrap(), "v");
        assert_eq!(resolve(format!("${{file:{o}/p.properties:k}}")).unwrap(), "v");
        assert_eq!(resolve(format!("${{dir:{x}/../ok:k}}")).unwrap(), "v");
        for refused in [
            format!("${{dir:{x}:k}}"),
            format!("${{file:{x}/p.properties:k}}"),
            format!("${{dir:{o}/../other:k}}"),
            "${dir:ok:k}".into(),
        ] {
            let e = resolve(refused.clone()).unwrap_err().to_string();
            assert!(e.contains("is outside allowed.paths"), "{refused}: {e}");
        }
        // As Kafka: each allowed path must be absolute and exist.
        for (paths, reason) in
            [("relative/dir", "not an absolute path"), ("/no/such/dir", "does not exist")]
        {
            let props =
                format!("{}config.providers.dir.param.allowed.paths={paths}", declare(None));
            let e = config(&props).unwrap().validate().unwrap_err().to_string();
            assert!(
                e.contains("config.providers.dir.param.allowed.paths") && e.contains(reason),
                "{e}"
            );
        }
        assert_eq!(normalise(Path::new("/a/./b/../../../c")), Path::new("/c"));
        assert_eq!(normalise(Path::new("a/../../c")), Path::new("../c"));
    }
}
