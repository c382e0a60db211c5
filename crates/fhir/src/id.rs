//! Identifiers of stored resources: a resource type and a logical id (FHIR R4 resource.html#id).

use std::fmt;

use crate::{search_param, FhirError};

/// A FHIR R4 resource type name, checked against the generated list of R4 resource types.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceType(String);

impl ResourceType {
    pub fn parse(name: &str) -> Result<Self, FhirError> {
        if search_param::is_resource_type(name) {
            Ok(ResourceType(name.to_owned()))
        } else {
            Err(FhirError::invalid(
                "resourceType",
                format!("'{name}' is not a FHIR R4 resource type"),
            ))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ResourceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A logical id: `[A-Za-z0-9\-\.]{1,64}` (FHIR R4 datatypes.html#id).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceId(String);

impl ResourceId {
    pub fn parse(id: &str) -> Result<Self, FhirError> {
        if is_valid_id(id) {
            Ok(ResourceId(id.to_owned()))
        } else {
            Err(FhirError::invalid(
                "id",
                format!("'{id}' is not a valid FHIR id (1 to 64 of A-Z a-z 0-9 - .)"),
            ))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_the_r4_id_pattern() {
        assert!(ResourceId::parse("e27d88b0-c5e5-4042-ad49-184f6").is_ok());
        assert!(ResourceId::parse("a.b-C9").is_ok());
        assert!(ResourceId::parse("").is_err());
        assert!(ResourceId::parse("has space").is_err());
        assert!(ResourceId::parse("under_score").is_err());
        assert!(ResourceId::parse(&"x".repeat(65)).is_err());
    }
}
