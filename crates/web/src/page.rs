//! The page frame: the layout every console page shares, its style sheet, and the header with
//! the signed-in user and the sign-out button.

use maud::{html, Markup, DOCTYPE};

use crate::caller::Caller;

/// Served at /static/rapport.css: the Content-Security-Policy allows no inline style or script.
pub(crate) const STYLE: &str = r#"
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1f2933;background:#f5f7fa;line-height:1.4}
header.top{background:#1d4e89;color:#fff;padding:.6rem 1.5rem;display:flex;gap:1.5rem;align-items:center}
header.top a{color:#fff;text-decoration:none;font-weight:600}
main{padding:1rem 1.5rem;max-width:1200px}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{text-align:left;padding:.35rem .6rem;border-bottom:1px solid #e4e7eb;vertical-align:top}
th{background:#eef2f7;font-weight:600}
form.search{display:flex;flex-wrap:wrap;gap:.5rem;margin:.5rem 0 1rem}
form.search input{padding:.4rem;border:1px solid #9aa5b1;border-radius:4px}
button{padding:.4rem .9rem;border:0;border-radius:4px;background:#1d4e89;color:#fff;cursor:pointer}
section.card{background:#fff;border:1px solid #e4e7eb;border-radius:6px;padding:.6rem 1rem;margin-bottom:1rem}
section.card h2{font-size:1.05rem;margin:.2rem 0 .6rem}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(340px,1fr));gap:1rem}
.muted{color:#616e7c;font-size:.85em}
.source{color:#616e7c;font-size:.8em}
.badge{display:inline-block;padding:0 .4rem;border-radius:3px;background:#e4e7eb;font-size:.8em}
.badge.warn{background:#fde2e1;color:#8a1c1c}
.pager{margin:1rem 0;display:flex;gap:1rem;align-items:center}
.year{background:#eef2f7;font-weight:600}
.spacer{flex:1}
header.top{flex-wrap:wrap;row-gap:.3rem}
.scroll{overflow-x:auto}
.note-text{white-space:pre-wrap;overflow-wrap:anywhere;unicode-bidi:isolate}
details.note summary{cursor:pointer;overflow-wrap:anywhere}
td,th{overflow-wrap:anywhere}
form.stack label{display:block;margin:.35rem 0}
@media (max-width:600px){main{padding:.6rem}.grid{grid-template-columns:1fr}table{font-size:.9em}form.search{flex-direction:column}}
.who{font-size:.9em}
form.inline{display:inline;margin:0}
header.top button{background:#fff;color:#1d4e89}
form.card label{display:inline-block;margin:.2rem 0}
.flag{background:#fde2e1;color:#8a1c1c;padding:0 .3rem;border-radius:3px}
.login{max-width:380px;margin:3rem auto}
.login label{display:block;margin:.6rem 0}
.login input{width:100%;padding:.45rem;box-sizing:border-box}
button.secondary{background:#616e7c}
section.consent{max-width:640px;margin:1.5rem auto}
section.consent h1{font-size:1.3rem}
.visually-hidden{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}
nav.filters,form.filters{display:flex;flex-wrap:wrap;gap:.4rem .8rem;margin:.4rem 0 .8rem;align-items:center}
nav.filters a[aria-current]{font-weight:700;text-decoration:none}
ul.alerts,ul.tasks{list-style:none;margin:0;padding:0}
li.alert{border-left:4px solid #9aa5b1;padding:.4rem .6rem;margin:.4rem 0;background:#fafbfc}
li.alert[data-severity=critical]{border-color:#b91c1c;background:#fdecec}
li.alert[data-severity=high]{border-color:#d97706}
li.alert[data-severity=normal]{border-color:#1d4e89}
li.alert p.why{margin:.2rem 0}
li.alert .severity{text-transform:uppercase;font-size:.7em;font-weight:700;letter-spacing:.04em}
li.alert .tag{font-size:.75em;background:#e4e7eb;border-radius:3px;padding:0 .3rem}
li.alert .due.overdue{color:#8a1c1c;font-weight:600}
form.actions{display:flex;flex-wrap:wrap;gap:.3rem;align-items:center}
form.actions button{padding:.45rem .7rem;min-height:2.2rem}
form.actions input{padding:.35rem;border:1px solid #9aa5b1;border-radius:4px}
button:focus-visible,a:focus-visible,input:focus-visible,select:focus-visible{outline:3px solid #f59e0b;outline-offset:2px}
.count{color:#616e7c;font-weight:400}
pre{white-space:pre-wrap;background:#f5f7fa;padding:.5rem;border-radius:4px;font-size:.85em}
"#;

pub(crate) fn layout(title: &str, caller: Option<&Caller>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Rapport" }
                link rel="stylesheet" href="/static/rapport.css";
            }
            body {
                header.top {
                    a href="/patients" { "Rapport" }
                    @if let Some(c) = caller {
                        @if c.principal.roles.iter().any(|r| !matches!(r, rapport_access::Role::Admin)) {
                            a href="/today" { "Today" }
                            a href="/patients" { "Patients" }
                        }
                        @if c.principal.is_admin() {
                            a href="/admin/users" { "Users" }
                            a href="/admin/audit" { "Audit trail" }
                            a href="/admin/break-glass" { "Break-the-glass reviews" }
                            a href="/admin/interfaces" { "Interfaces" }
                            a href="/admin/alerts" { "Alert rules" }
                        }
                        span.spacer {}
                        span.who { (c.principal.name) " (" (c.principal.role_label()) ")" }
                        @if let Some(csrf) = c.csrf() {
                            form.inline method="post" action="/logout" {
                                input type="hidden" name="csrf" value=(csrf);
                                button type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}
