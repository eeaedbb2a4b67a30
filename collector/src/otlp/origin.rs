//! Where a row came from — service, resource and instrumentation scope — and the columns that
//! every table carries for it.

use std::sync::Arc;

use arrow::array::{ArrayRef, StringBuilder};
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;

use super::attributes::{AttributesBuilder, FlatAttributes, flatten, service_name};

/// A resource, flattened once for all of its rows.
pub(crate) struct ResourceInfo {
    service: String,
    attributes: FlatAttributes,
}

impl ResourceInfo {
    fn new(resource: Option<&Resource>) -> Self {
        let attrs = resource.map(|r| r.attributes.as_slice()).unwrap_or(&[]);
        Self {
            service: service_name(attrs),
            attributes: flatten(attrs),
        }
    }
}

/// An instrumentation scope, flattened once for all of its rows.
pub(crate) struct ScopeInfo {
    name: String,
    version: String,
    attributes: FlatAttributes,
}

impl ScopeInfo {
    fn new(scope: Option<&InstrumentationScope>) -> Self {
        match scope {
            Some(s) => Self {
                name: s.name.clone(),
                version: s.version.clone(),
                attributes: flatten(&s.attributes),
            },
            None => Self {
                name: String::new(),
                version: String::new(),
                attributes: Vec::new(),
            },
        }
    }
}

/// The resource and scope of one row.
pub(crate) struct Origin<'a> {
    resource: &'a ResourceInfo,
    scope: &'a ScopeInfo,
}

/// Calls `f` for every item of an export request with the item's origin.
///
/// `split_resource` gives a resource-level message's resource and scope-level messages;
/// `split_scope` gives a scope-level message's scope and items.
pub(crate) fn for_each_item<'r, R: 'r, S: 'r, I: 'r>(
    resources: &'r [R],
    split_resource: impl Fn(&'r R) -> (Option<&'r Resource>, &'r [S]),
    split_scope: impl Fn(&'r S) -> (Option<&'r InstrumentationScope>, &'r [I]),
    mut f: impl FnMut(&Origin, &'r I),
) {
    for r in resources {
        let (resource, scopes) = split_resource(r);
        let resource = ResourceInfo::new(resource);
        for s in scopes {
            let (scope, items) = split_scope(s);
            let scope = ScopeInfo::new(scope);
            let origin = Origin {
                resource: &resource,
                scope: &scope,
            };
            for item in items {
                f(&origin, item);
            }
        }
    }
}

/// Builders of the origin columns.
pub(crate) struct OriginColumns {
    service: StringBuilder,
    resource_attributes: AttributesBuilder,
    scope_name: StringBuilder,
    scope_version: StringBuilder,
    scope_attributes: AttributesBuilder,
}

/// The finished origin columns, to be placed where each table's schema has them.
pub(crate) struct OriginArrays {
    pub service: ArrayRef,
    pub resource_attributes: ArrayRef,
    pub scope_name: ArrayRef,
    pub scope_version: ArrayRef,
    pub scope_attributes: ArrayRef,
}

impl OriginColumns {
    pub(crate) fn with_capacity(n: usize) -> Self {
        Self {
            service: StringBuilder::with_capacity(n, n * 16),
            resource_attributes: AttributesBuilder::new(),
            scope_name: StringBuilder::with_capacity(n, n * 16),
            scope_version: StringBuilder::with_capacity(n, n * 8),
            scope_attributes: AttributesBuilder::new(),
        }
    }

    pub(crate) fn push(&mut self, origin: &Origin) {
        self.service.append_value(&origin.resource.service);
        self.resource_attributes
            .append_flat(&origin.resource.attributes);
        self.scope_name.append_value(&origin.scope.name);
        self.scope_version.append_value(&origin.scope.version);
        self.scope_attributes.append_flat(&origin.scope.attributes);
    }

    pub(crate) fn finish(&mut self) -> OriginArrays {
        OriginArrays {
            service: Arc::new(self.service.finish()),
            resource_attributes: self.resource_attributes.finish(),
            scope_name: Arc::new(self.scope_name.finish()),
            scope_version: Arc::new(self.scope_version.finish()),
            scope_attributes: self.scope_attributes.finish(),
        }
    }
}
