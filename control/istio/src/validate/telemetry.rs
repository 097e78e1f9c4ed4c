//! Telemetry rules (the CRD's OpenAPI and CEL rules, Istio's `ValidateTelemetry`).

use crate::model::telemetry::{TagOperation, Telemetry};

use super::Ctx;
use super::common::{duration, one_target, percent, selector_labels};

pub(super) fn validate(cx: &mut Ctx, t: &Telemetry, ns: &str) {
    one_target(
        cx,
        t.selector.is_some(),
        t.target_ref.as_ref(),
        t.target_refs.as_ref(),
        ns,
    );
    if let Some(l) = t.selector.as_ref().and_then(|s| s.match_labels.as_ref()) {
        selector_labels(cx, "spec.selector.matchLabels", l);
    }
    let provider_names = |cx: &mut Ctx, p: &str, names: &mut dyn Iterator<Item = &str>| {
        for (j, name) in names.enumerate() {
            if name.is_empty() {
                let path = format!("{p}.providers[{j}].name");
                let text =
                    format!("Invalid value: \"\": {path} in body should be at least 1 chars long");
                cx.error(&path, text);
            }
        }
    };
    for (i, tr) in t.tracing.iter().enumerate() {
        let p = format!("spec.tracing[{i}]");
        provider_names(cx, &p, &mut tr.providers.iter().map(|p| p.name.as_str()));
        if let Some(pc) = tr.random_sampling_percentage {
            percent(cx, &format!("{p}.randomSamplingPercentage"), pc);
        }
        for (name, tag) in &tr.custom_tags {
            let kinds = usize::from(tag.literal.is_some())
                + usize::from(tag.environment.is_some())
                + usize::from(tag.header.is_some())
                + usize::from(tag.formatter.is_some());
            if kinds != 1 {
                cx.error(
                    &format!("{p}.customTags.{name}"),
                    "exactly one of literal, environment, header or formatter must be set",
                );
            }
        }
    }
    for (i, m) in t.metrics.iter().enumerate() {
        let p = format!("spec.metrics[{i}]");
        provider_names(cx, &p, &mut m.providers.iter().map(|p| p.name.as_str()));
        duration(
            cx,
            &format!("{p}.reportingInterval"),
            m.reporting_interval.as_ref(),
        );
        for (j, o) in m.overrides.iter().enumerate() {
            let op = format!("{p}.overrides[{j}]");
            if let Some(sel) = &o.matches
                && sel.metric.is_some()
                && sel.custom_metric.is_some()
            {
                cx.error(
                    &format!("{op}.match"),
                    "only one of metric or customMetric may be set",
                );
            }
            for (tag, ov) in &o.tag_overrides {
                let tp = format!("{op}.tagOverrides.{tag}");
                let has_value = ov.value.as_deref().is_some_and(|v| !v.is_empty());
                match ov.operation {
                    Some(TagOperation::Remove) if ov.value.is_some() => {
                        cx.error(&tp, "value must not be set when operation is REMOVE");
                    }
                    Some(TagOperation::Upsert) | None if !has_value => {
                        cx.error(&tp, "value must be set when operation is UPSERT");
                    }
                    _ => {}
                }
            }
        }
    }
    for (i, a) in t.access_logging.iter().enumerate() {
        let p = format!("spec.accessLogging[{i}]");
        provider_names(cx, &p, &mut a.providers.iter().map(|p| p.name.as_str()));
    }
}
