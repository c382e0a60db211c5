//! A form extractor whose rejections are the application's own error pages: a malformed or
//! incomplete form is a 400 with a plain message, never the framework's raw text.

use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

use crate::WebError;

pub(crate) struct Form<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Form<T> {
    type Rejection = WebError;

    async fn from_request(req: Request, state: &S) -> Result<Self, WebError> {
        match axum::Form::<T>::from_request(req, state).await {
            Ok(axum::Form(v)) => Ok(Form(v)),
            Err(rejection) => {
                let status = rejection.status();
                if status == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    Err(WebError::BadRequest("The form is too large.".into()))
                } else {
                    Err(WebError::BadRequest("The form is incomplete or malformed. Go back, reload the page and try again.".into()))
                }
            }
        }
    }
}
