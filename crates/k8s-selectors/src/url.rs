//! Masking the userinfo of URLs, the one implementation both glasskube-api (a
//! PackageRepository's `spec.url`) and repocache's debug redaction use. Parsing is `http::Uri`'s.

use http::Uri;

/// `url` with its userinfo (`user:password@`) replaced by `replacement`, or `None` when it has
/// none.
///
/// The URL is parsed with [`http::Uri`]; a URL without a scheme (`user:pw@host/path`) is read as
/// if it had one. Only the userinfo changes: the scheme, host (IPv6 too), port, path, query and
/// fragment are kept as written. A string that does not parse as a URL (or whose port is not a
/// number) but contains an `@` may be a URL with an unescaped password (`https://u:a/b@host`):
/// it is masked whole (`replacement` alone), erring on the side of not showing a credential.
///
/// ```
/// use k8s_selectors::url::mask_userinfo;
///
/// assert_eq!(
///     mask_userinfo("https://u:p@[::1]:8443/x?q=a@b", "<redacted>").as_deref(),
///     Some("https://<redacted>@[::1]:8443/x?q=a@b")
/// );
/// assert_eq!(mask_userinfo("https://host/x?user=a@b", "<redacted>"), None);
/// ```
pub fn mask_userinfo(url: &str, replacement: &str) -> Option<String> {
    // With a scheme, the authority starts after the first `://`; without, at the start.
    let (uri, start) = match Uri::try_from(url) {
        Ok(uri) if uri.scheme().is_some() => (Some(uri), url.find("://").map(|i| i + 3)),
        _ => (Uri::try_from(format!("placeholder://{url}")).ok(), Some(0)),
    };
    let garbage = || url.contains('@').then(|| replacement.to_owned());
    let (Some(uri), Some(start)) = (uri, start) else {
        return garbage();
    };
    let Some(authority) = uri.authority() else {
        return garbage();
    };
    // `Uri` takes `u:a` (in `https://u:a/b@host`) as a host and a port it cannot read.
    let text = authority.as_str();
    let host_port = text.rsplit_once('@').map_or(text, |(_, h)| h);
    let port = host_port
        .rfind(']')
        .map_or(host_port, |i| &host_port[i + 1..]);
    if port.contains(':') && authority.port_u16().is_none() {
        return garbage();
    }
    let at = text.rfind('@')?;
    let rest = url.get(start + at..)?;
    Some(format!("{}{replacement}{rest}", url.get(..start)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const R: &str = "<redacted>";

    #[test]
    fn userinfo_with_and_without_a_scheme() {
        let cases = [
            ("https://u:p@host/x", Some("https://<redacted>@host/x")),
            ("https://tok@host", Some("https://<redacted>@host")),
            (
                "https://u%40x:p%2Fq@host:8080/",
                Some("https://<redacted>@host:8080/"),
            ),
            (
                "oci://u:p@registry.example/repo#frag@x",
                Some("oci://<redacted>@registry.example/repo#frag@x"),
            ),
            ("u:p@host/x", Some("<redacted>@host/x")),
            ("tok@host", Some("<redacted>@host")),
            ("u:p@host:8443", Some("<redacted>@host:8443")),
        ];
        for (url, masked) in cases {
            assert_eq!(mask_userinfo(url, R).as_deref(), masked, "{url}");
        }
    }

    #[test]
    fn ipv6_hosts() {
        let cases = [
            (
                "https://u:p@[::1]:8443/x",
                Some("https://<redacted>@[::1]:8443/x"),
            ),
            ("http://u@[fe80::1]/", Some("http://<redacted>@[fe80::1]/")),
            ("u:p@[2001:db8::2]/x", Some("<redacted>@[2001:db8::2]/x")),
            ("https://[::1]:8443/x", None),
            ("[::1]:8443", None),
        ];
        for (url, masked) in cases {
            assert_eq!(mask_userinfo(url, R).as_deref(), masked, "{url}");
        }
    }

    #[test]
    fn no_userinfo() {
        for url in [
            "https://host/x",
            "https://host/x?user=a@b",
            "https://host/x#a@b",
            "https://host/a@b",
            "host:8080",
            "host/path",
            "",
        ] {
            assert_eq!(mask_userinfo(url, R), None, "{url}");
        }
    }

    #[test]
    fn garbage_with_an_at_sign_is_masked_whole() {
        for url in [
            "https://u:a/b@c@host/x",
            "https://u:p w@host/x",
            "https://u:p@host:port/x",
            "https://u:p@bücher.example/",
            "not a url, mail me@example.org",
        ] {
            assert_eq!(mask_userinfo(url, R).as_deref(), Some(R), "{url}");
        }
        for url in ["not a url", "https://ho st/x", "::::"] {
            assert_eq!(mask_userinfo(url, R), None, "{url}");
        }
    }
}
