//! Generate stage: the code for a checked model. Trait bounds that only the compiler can check
//! are spanned on the user's tokens, so that an unmet bound is reported there.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::{GenericParam, ItemImpl, ItemStruct};

use crate::attr::ComponentArgs;
use crate::model::{Handler, Hook, Model};
use crate::topic_rules;

/// The path of the runtime crate: `crate = path`, or `::fluxor`.
pub(crate) fn krate(path: Option<&syn::Path>) -> TokenStream {
    path.map_or_else(|| quote!(::fluxor), |p| quote!(#p))
}

/// The struct half: records the component's name, config type, worker mode and supervision
/// in `__private::Declared`, which the impl half reads.
pub(crate) fn declared(args: &ComponentArgs, item: &ItemStruct) -> TokenStream {
    let krate = krate(args.krate.as_ref());
    let ident = &item.ident;
    let name = args
        .name
        .as_ref()
        .map_or_else(|| ident.to_string(), |n| n.value.value());
    let config = args.config.as_ref().map_or_else(
        || quote!(()),
        |t| {
            let t = &t.value;
            quote_spanned!(t.span()=> #t)
        },
    );
    // Worker mode needs `Self: Send`; a component that is not is reported on `worker`.
    let worker = args.worker.map_or_else(
        || quote!(::core::option::Option::None),
        |w| quote_spanned!(w=> #krate::__private::worker_mode::<Self>()),
    );
    let supervise = args.supervise.as_ref().map_or_else(
        || quote!(<#krate::Supervision as ::core::default::Default>::default()),
        |e| {
            let e = &e.value;
            quote_spanned!(e.span()=> #e)
        },
    );
    // Each named component must be one: reported on its name.
    let after = args.after.as_ref().map(|a| {
        let names = a
            .value
            .iter()
            .map(|t| quote_spanned!(t.span()=> <#t as #krate::__private::Declared>::NAME));
        quote!(const AFTER: &'static [&'static str] = &[#(#names),*];)
    });
    let (impl_g, ty_g, where_c) = item.generics.split_for_impl();
    quote! {
        const _: () = {
            #[automatically_derived]
            impl #impl_g #krate::__private::Declared for #ident #ty_g #where_c {
                type Config = #config;
                const NAME: &'static str = #name;
                #after

                fn worker_mode() -> ::core::option::Option<#krate::WorkerMode<Self>> {
                    #worker
                }

                fn supervision() -> #krate::Supervision {
                    #supervise
                }
            }
        };
    }
}

/// The impl half: the user's impl block, then the mailbox enum, dispatch, bindings, addresses
/// and the `Component` impl for the handlers and hooks in `model`.
pub(crate) fn component_impl(krate: &TokenStream, item: &ItemImpl, model: &Model) -> TokenStream {
    let self_ty = &item.self_ty;
    // Generated code that needs the struct's `Declared` impl is spanned on the type, so that a
    // struct without `#[component]` is reported there, once.
    let site = self_ty.span();
    let krate = &respan(krate, site);
    let (impl_g, _, where_c) = item.generics.split_for_impl();
    // `M: Message` for each handler's message type that names no parameter of the impl,
    // spanned on that type. The compiler checks a bound without parameters where it is
    // written and assumes it inside the item; every generated item and the user's impl block
    // carry the same bounds, so a type that is not a message gives the same error on each,
    // which the compiler shows once, and nothing that relies on the bound adds another. (A
    // component with such a handler then does not implement `Component`: deploying it is an
    // error too, at the deploy.)
    let params = param_names(item);
    let mut msg_bounds_global: Vec<TokenStream> = global_message_types(&params, model)
        .map(|m| {
            let krate = respan(krate, m.span());
            quote_spanned!(m.span()=> #m: #krate::Message)
        })
        .collect();
    // Likewise `Ret: IntoReply<M::Reply>` for each handler, spanned on its return type: a
    // reply that does not match is reported there once, and a message type that is not one
    // does not also fail the reply's conversion.
    msg_bounds_global.extend(model.handlers.iter().filter_map(|h| {
        let ret = h
            .ret
            .as_ref()
            .map_or_else(|| quote!(()), |t| t.to_token_stream());
        let m = &h.msg;
        if mentions_any(m.to_token_stream(), &params) || !plain_type(ret.clone(), &params) {
            return None;
        }
        let krate = respan(krate, h.ret_span);
        let ret = respan(&ret, h.ret_span);
        Some(quote_spanned!(h.ret_span=> #ret: #krate::IntoReply<<#m as #krate::Message>::Reply>))
    }));
    let user_preds = where_c.map(|w| {
        let p = &w.predicates;
        quote!(#p,)
    });
    let full_where = quote!(where #user_preds #(#msg_bounds_global,)*);
    let mut user_item = item.clone();
    for bound in &msg_bounds_global {
        user_item
            .generics
            .make_where_clause()
            .predicates
            .push(syn::parse_quote!(#bound));
    }
    let enum_params = &item.generics.params;
    let enum_args: Vec<TokenStream> = item
        .generics
        .params
        .iter()
        .map(|p| match p {
            GenericParam::Type(t) => {
                let i = &t.ident;
                quote!(#i)
            }
            GenericParam::Lifetime(l) => {
                let l = &l.lifetime;
                quote!(#l)
            }
            GenericParam::Const(c) => {
                let i = &c.ident;
                quote!(#i)
            }
        })
        .collect();
    let phantom_tys: Vec<TokenStream> = item
        .generics
        .params
        .iter()
        .filter_map(|p| match p {
            GenericParam::Type(t) => {
                let i = &t.ident;
                Some(quote!(#i))
            }
            _ => None,
        })
        .collect();
    let msg_enum = quote!(__FluxorMsg<#(#enum_args),*>);

    let variants = model.handlers.iter().map(|h| {
        let v = h.variant();
        let m = &h.msg;
        let krate = respan(krate, m.span());
        quote_spanned!(m.span()=> #v(#krate::Envelope<#m>))
    });
    let phantom_variant = (!phantom_tys.is_empty()).then(|| {
        quote! {
            #[doc(hidden)]
            __Phantom(::core::marker::PhantomData<fn() -> (#(#phantom_tys,)*)>, ::core::convert::Infallible)
        }
    });
    let phantom_arm = phantom_variant
        .as_ref()
        .map(|_| quote!(__FluxorMsg::__Phantom(_, never) => match never {},));
    let msg_bounds = model.handlers.iter().map(|h| {
        let m = &h.msg;
        quote_spanned!(m.span()=> #m: #krate::Message)
    });
    let enum_where = if phantom_tys.is_empty() {
        quote!(where #(#msg_bounds_global,)*)
    } else {
        let existing = where_c.map(|w| {
            let p = &w.predicates;
            quote!(#p,)
        });
        quote!(where #existing #(#msg_bounds,)*)
    };

    let binds = model.handlers.iter().filter_map(|h| {
        let topic = h.topic.as_ref()?;
        let v = h.variant();
        let m = &h.msg;
        Some(match h.remote {
            // Spanned on `remote`: a message that cannot cross nodes is reported there.
            Some(remote) => {
                quote_spanned!(remote=> bindings.bind_remote::<#m>(#topic, __FluxorMsg::#v);)
            }
            None => quote_spanned!(site=> bindings.bind::<#m>(#topic, __FluxorMsg::#v);),
        })
    });

    let count = model.handlers.len();
    let now_fn = |h: &Handler| format_ident!("__fluxor_now_{}", h.method);
    // `#[on_config]`: run after the context adopted a new config, before the handler.
    let config_hook = model.on_config.as_ref().map(|hook| {
        let method = &hook.method;
        let ret = hook.ret_span;
        let ret_krate = respan(krate, ret);
        let call = quote_spanned!(ret=> #ret_krate::__private::IntoStartResult::into_start_result(self.#method(ctx)));
        quote_spanned! {site=>
            if ctx.__config_changed() {
                if let ::core::result::Result::Err(e) = #call {
                    ctx.__config_refused(e);
                }
            }
        }
    });
    // A plain handler runs in place through one hidden method per handler, used both by
    // `handle` (as a ready future) and by `handle_now`, so its reply type is checked once.
    let now_fns = model.handlers.iter().filter(|h| !h.is_async).map(|h| {
        let name = now_fn(h);
        let method = &h.method;
        let m = &h.msg;
        let call_args = if h.takes_ctx {
            quote!(msg, ctx)
        } else {
            quote!(msg)
        };
        // The context is the closure's parameter; unnamed when the handler does not take it.
        let ctx_param = if h.takes_ctx { quote!(ctx) } else { quote!(_) };
        // The `#[on_config]` hook runs between the two steps, where it runs after `accept`.
        let accept = quote_spanned!(h.msg.span()=> ctx.__accept_now(envelope));
        let run = quote_spanned!(h.ret_span=> ctx.__run_accepted(accepted, |msg, #ctx_param| {
            self.#method(#call_args)
        }));
        quote_spanned! {site=>
            #[doc(hidden)]
            #[allow(non_snake_case)]
            #[inline]
            fn #name(
                &mut self,
                envelope: #krate::Envelope<#m>,
                ctx: &mut #krate::Context<Self>,
            ) -> #krate::Outcome {
                let accepted = #accept;
                #config_hook
                #run
            }
        }
    });
    let now_arms = model.handlers.iter().filter(|h| !h.is_async).map(|h| {
        let v = h.variant();
        let name = now_fn(h);
        quote!(__FluxorMsg::#v(envelope) => ::core::result::Result::Ok(self.#name(envelope, ctx)),)
    });
    let handle_now = (model.handlers.iter().any(|h| !h.is_async)).then(|| {
        quote_spanned! {site=>
            #[inline]
            fn handle_now(
                &mut self,
                msg: Self::Msg,
                ctx: &mut #krate::Context<Self>,
            ) -> ::core::result::Result<#krate::Outcome, Self::Msg> {
                #[allow(unreachable_patterns)]
                match msg {
                    #(#now_arms)*
                    other => ::core::result::Result::Err(other),
                }
            }
        }
    });
    let arms = model.handlers.iter().enumerate().map(|(index, h)| {
        let v = h.variant();
        let method = &h.method;
        let run = if h.is_async {
            let call_args = if h.takes_ctx {
                quote!(msg, ctx)
            } else {
                quote!(msg)
            };
            let accept = quote_spanned!(h.msg.span()=> ctx.accept(envelope));
            let run = quote_spanned!(h.ret_span=> responder.run(self.#method(#call_args)));
            quote!({
                let (msg, responder) = #accept;
                #config_hook
                #run
            })
        } else {
            let name = now_fn(h);
            quote!(::core::future::ready(self.#name(envelope, ctx)))
        };
        let run = dispatch_path(krate, run, index, 0..count);
        quote! {
            __FluxorMsg::#v(envelope) => #run,
        }
    });
    // Each arm returns its handler's future inside nested `Either`s, so `handle` returns one
    // future type without boxing; with no handlers there is nothing to run.
    let dispatch = if count == 0 {
        quote!(#[allow(unreachable_code)] ::core::future::ready::<#krate::Outcome>(match msg { #phantom_arm }))
    } else {
        quote!(match msg {
            #(#arms)*
            #phantom_arm
        })
    };

    let addresses = model.handlers.iter().filter_map(|h| {
        let topic = h.topic.as_ref()?;
        let m = &h.msg;
        let name = format_ident!(
            "{}",
            h.method.to_string().to_uppercase(),
            span = h.method.span()
        );
        // A wildcard topic names many topics, none of which can be sent to as written: its
        // constant is a `Pattern`, which is not a `Destination`, so sending to it does not
        // compile instead of failing at run time.
        let (ty, doc) = if topic_rules::is_pattern(&topic.value()) {
            let doc = format!(
                "The topic pattern of [`{0}`](Self::{0}): `{1}`. A pattern is not a \
                 destination; send to a concrete topic that it matches.",
                h.method,
                topic.value()
            );
            (quote!(Pattern), doc)
        } else {
            let doc = format!(
                "The address of [`{0}`](Self::{0}): topic `{1}`.",
                h.method,
                topic.value()
            );
            (quote!(Address), doc)
        };
        Some(quote! {
            #[doc = #doc]
            #[allow(private_interfaces, dead_code, unreachable_pub)]
            pub const #name: #krate::#ty<#m> = #krate::#ty::new(#topic);
        })
    });

    let handles = model
        .handlers
        .iter()
        .filter(|h| h.topic.is_none())
        .map(|h| {
            let v = h.variant();
            let m = &h.msg;
            let krate = respan(krate, m.span());
            quote_spanned! {m.span()=>
                #[automatically_derived]
                impl #impl_g #krate::Handles<#m> for #self_ty #full_where {
                    fn wrap(envelope: #krate::Envelope<#m>) -> #msg_enum {
                        __FluxorMsg::#v(envelope)
                    }
                }
            }
        });

    let start = hook_fn(krate, site, quote!(start), model.on_start.as_ref());
    let start_at_once = model.on_start.as_ref().is_none_or(|hook| !hook.is_async);
    let stop = hook_fn(krate, site, quote!(stop), model.on_stop.as_ref());
    let stop_at_once = model.on_stop.as_ref().is_none_or(|hook| !hook.is_async);
    let component_header =
        quote_spanned!(site=> impl #impl_g #krate::Component for #self_ty #full_where);
    let declared = quote_spanned!(site=> <#self_ty as #krate::__private::Declared>);
    quote_spanned! {site=>
        #user_item

        const _: () = {
            #[doc(hidden)]
            #[allow(non_camel_case_types, private_interfaces, missing_debug_implementations, unreachable_pub)]
            pub enum __FluxorMsg<#enum_params> #enum_where {
                #(#variants,)*
                #phantom_variant
            }

            #[allow(private_interfaces)]
            impl #impl_g #self_ty #full_where {
                #(#addresses)*
                #(#now_fns)*
            }

            #(#handles)*

            #[automatically_derived]
            #component_header {
                type Msg = #msg_enum;
                type Config = #declared::Config;
                const START_AT_ONCE: bool = #start_at_once;
                const STOP_AT_ONCE: bool = #stop_at_once;

                fn name() -> &'static str {
                    #declared::NAME
                }

                fn worker_mode() -> ::core::option::Option<#krate::WorkerMode<Self>> {
                    #declared::worker_mode()
                }

                fn supervision() -> #krate::Supervision {
                    #declared::supervision()
                }

                fn after() -> &'static [&'static str] {
                    #declared::AFTER
                }

                fn bindings(bindings: &mut #krate::Bindings<'_, Self>) {
                    let _ = &bindings;
                    #(#binds)*
                }

                #start
                #stop

                fn handle(
                    &mut self,
                    msg: Self::Msg,
                    ctx: &mut #krate::Context<Self>,
                ) -> impl ::core::future::Future<Output = #krate::Outcome> {
                    #dispatch
                }

                #handle_now
            }
        };
    }
}

/// The names of the impl's type and const parameters, and `Self`.
fn param_names(item: &ItemImpl) -> Vec<String> {
    item.generics
        .params
        .iter()
        .filter_map(|p| match p {
            GenericParam::Type(t) => Some(t.ident.to_string()),
            GenericParam::Const(c) => Some(c.ident.to_string()),
            GenericParam::Lifetime(_) => None,
        })
        .chain(["Self".to_owned()])
        .collect()
}

/// Whether `tokens` name a type that can stand in a where clause as it is: no parameter of
/// the impl, no reference (whose lifetime may be elided) and no `impl Trait`.
fn plain_type(tokens: TokenStream, params: &[String]) -> bool {
    !mentions_any(tokens.clone(), params)
        && !mentions_any(tokens.clone(), &["impl".to_owned(), "dyn".to_owned()])
        && !tokens.into_iter().any(|tt| match tt {
            proc_macro2::TokenTree::Punct(p) => p.as_char() == '&' || p.as_char() == '\'',
            proc_macro2::TokenTree::Group(g) => !plain_type(g.stream(), &[]),
            _ => false,
        })
}

/// The distinct message types of the handlers that name no type parameter of the impl.
fn global_message_types<'a>(
    params: &'a [String],
    model: &'a Model,
) -> impl Iterator<Item = &'a syn::Type> {
    let mut seen: Vec<String> = Vec::new();
    model.handlers.iter().map(|h| &h.msg).filter(move |m| {
        let text = m.to_token_stream().to_string();
        let generic = mentions_any(m.to_token_stream(), params);
        let new = !seen.contains(&text);
        seen.push(text);
        new && !generic
    })
}

/// Whether `tokens` contain one of the identifiers `names`.
fn mentions_any(tokens: TokenStream, names: &[String]) -> bool {
    tokens.into_iter().any(|tt| match tt {
        proc_macro2::TokenTree::Ident(i) => names.iter().any(|n| i == n),
        proc_macro2::TokenTree::Group(g) => mentions_any(g.stream(), names),
        _ => false,
    })
}

/// `tokens` with every span set to `span`.
fn respan(tokens: &TokenStream, span: Span) -> TokenStream {
    tokens
        .clone()
        .into_iter()
        .map(|mut tt| {
            if let proc_macro2::TokenTree::Group(g) = &tt {
                let mut group = proc_macro2::Group::new(g.delimiter(), respan(&g.stream(), span));
                group.set_span(span);
                tt = group.into();
            } else {
                tt.set_span(span);
            }
            tt
        })
        .collect()
}

/// Wraps handler `index`'s future (of handlers `range`) in the `Either`s that lead to it in a
/// balanced tree of them.
fn dispatch_path(
    krate: &TokenStream,
    future: TokenStream,
    index: usize,
    range: std::ops::Range<usize>,
) -> TokenStream {
    if range.len() <= 1 {
        return future;
    }
    let mid = range.start + range.len() / 2;
    if index < mid {
        let inner = dispatch_path(krate, future, index, range.start..mid);
        quote!(#krate::__private::Either::Left { future: #inner })
    } else {
        let inner = dispatch_path(krate, future, index, mid..range.end);
        quote!(#krate::__private::Either::Right { future: #inner })
    }
}

fn hook_fn(
    krate: &TokenStream,
    site: Span,
    which: TokenStream,
    hook: Option<&Hook>,
) -> TokenStream {
    let Some(hook) = hook else { return quote!() };
    let method = &hook.method;
    // The conversion is spanned on the return type, so that a hook returning something else
    // is reported there.
    let ret = hook.ret_span;
    let ret_krate = respan(krate, ret);
    let call = if hook.is_async {
        quote_spanned!(ret=> self.#method(ctx).await)
    } else {
        quote_spanned!(ret=> self.#method(ctx))
    };
    let convert =
        quote_spanned!(ret=> #ret_krate::__private::IntoStartResult::into_start_result(#call));
    quote_spanned! {site=>
        async fn #which(
            &mut self,
            ctx: &mut #krate::Context<Self>,
        ) -> ::core::result::Result<(), #krate::BoxError> {
            #convert
        }
    }
}
