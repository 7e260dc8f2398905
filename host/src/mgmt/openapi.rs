//! The OpenAPI 3 document, generated from the handlers' `#[utoipa::path]` attributes
//! as the routes are registered (so a route cannot exist without its description),
//! served at `/api/openapi.json`.

use utoipa::Modify;
use utoipa::OpenApi;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};

use super::auth::{CSRF_HEADER, SESSION_COOKIE};

/// The document's fixed parts; the paths come from the router.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "punktfunk management API",
        description = "The web console's API. Log in with POST /api/v1/auth/login (or create \
                       the first admin with POST /api/v1/setup); the answer sets the session \
                       cookie and holds a CSRF token to send in X-CSRF-Token on every POST, \
                       PUT, PATCH and DELETE.",
    ),
    modifiers(&Security),
    tags(
        (name = "setup", description = "First-run setup"),
        (name = "auth", description = "Login sessions"),
        (name = "status", description = "Host status and live sessions"),
        (name = "devices", description = "Paired devices"),
        (name = "pairing", description = "Pairing new devices"),
        (name = "apps", description = "Apps clients can launch"),
        (name = "settings", description = "Host settings"),
        (name = "system", description = "Logs, network check, restart"),
    )
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "session_cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                SESSION_COOKIE,
                "Set by login or setup; HttpOnly, Secure, SameSite=Strict",
            ))),
        );
        components.add_security_scheme(
            "csrf_token",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                CSRF_HEADER,
                "The session's csrf_token, required on every state-changing request",
            ))),
        );
    }
}
