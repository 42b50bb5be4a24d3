//! OpenAI's list envelope and cursor parameters: `?limit=&after=` in,
//! `{"object":"list","data":[...],"first_id","last_id","has_more"}` out.

use serde::Deserialize;
use utoipa::IntoParams;

use crate::error::ApiError;
use crate::store::{Page, PageRequest};

/// Cursor parameters shared by every list route.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// How many objects to return, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// The id of the last object of the previous page.
    pub after: Option<String>,
}

impl ListQuery {
    pub fn page(&self) -> Result<PageRequest, ApiError> {
        let limit = self.limit.unwrap_or(20);
        if !(1..=100).contains(&limit) {
            return Err(ApiError::invalid(
                "limit",
                "'limit' must be between 1 and 100.",
            ));
        }
        Ok(PageRequest {
            limit: limit as u32,
            after: self.after.clone().filter(|a| !a.is_empty()),
        })
    }
}

/// Objects that have an id (for `first_id` / `last_id`).
pub trait HasId {
    fn id(&self) -> &str;
}

/// Declares a concrete list type `$list` of `$item` (utoipa documents concrete types best).
macro_rules! list_of {
    ($list:ident, $item:ty) => {
        #[derive(Debug, serde::Serialize, utoipa::ToSchema)]
        pub struct $list {
            /// Always `list`.
            #[schema(example = "list")]
            pub object: &'static str,
            pub data: Vec<$item>,
            pub first_id: Option<String>,
            pub last_id: Option<String>,
            pub has_more: bool,
        }

        impl From<$crate::store::Page<$item>> for $list {
            fn from(page: $crate::store::Page<$item>) -> Self {
                let (first_id, last_id) = $crate::api::list::ends(&page);
                $list {
                    object: "list",
                    first_id,
                    last_id,
                    has_more: page.has_more,
                    data: page.items,
                }
            }
        }
    };
}
pub(crate) use list_of;

pub fn ends<T: HasId>(page: &Page<T>) -> (Option<String>, Option<String>) {
    (
        page.items.first().map(|i| i.id().to_owned()),
        page.items.last().map(|i| i.id().to_owned()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_outside_1_to_100_are_rejected_by_name() {
        for bad in [0, 101, -1] {
            let q = ListQuery {
                limit: Some(bad),
                after: None,
            };
            match q.page() {
                Err(ApiError::InvalidValue { param, .. }) => assert_eq!(param, "limit"),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(ListQuery::default().page().unwrap().limit, 20);
    }
}
