import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// `GET /console/…`: the web console's static files. They are public (the
/// console holds no data); everything it shows comes from the authorised API,
/// called by the page with the token the user pasted. Every answer carries a
/// strict Content-Security-Policy (same-origin scripts, styles and calls only;
/// no inline script or style), an ETag, and `Cache-Control: no-cache`: the file
/// names carry no version, so a browser revalidates (a 304 when unchanged).
struct ConsoleHandler: Sendable {
    let bundle: ConsoleBundle?

    static let template = "/console/{asset}"
    static let contentSecurityPolicy = [
        "default-src 'none'", "script-src 'self'", "style-src 'self'", "img-src 'self' blob: data:",
        "connect-src 'self'", "base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'",
    ].joined(separator: "; ")

    func register(on router: Router<GatewayRequestContext>) {
        // The router matches `/console/` here too (it ignores a trailing slash): that is the index.
        router.get("console") { request, context in
            context.record.update { $0.routeTemplate = "/console" }
            guard request.uri.path.hasSuffix("/") else {
                var headers = Self.securityHeaders()
                headers[.location] = "/console/"
                return Response(status: .permanentRedirect, headers: headers)
            }
            return try serve("index.html", request)
        }
        router.get("console/**") { request, context in
            context.record.update { $0.routeTemplate = Self.template }
            let parts = context.parameters.getCatchAll()
            return try serve(parts.isEmpty ? "index.html" : parts.joined(separator: "/"), request)
        }
    }

    private func serve(_ path: String, _ request: Request) throws -> Response {
        guard let bundle else {
            throw GatewayProblem(.notFound, "not-configured", "The console is not enabled (console.enabled, console.directory).")
        }
        guard let asset = bundle.assets[path] else {
            throw GatewayProblem(.notFound, "not-found", "No such console file.")
        }
        var headers = Self.securityHeaders()
        headers[.eTag] = asset.etag
        headers[.cacheControl] = "no-cache"
        if let known = request.headers[.ifNoneMatch],
           known.split(separator: ",").contains(where: { $0.trimmingCharacters(in: .whitespaces) == asset.etag }) {
            return Response(status: .notModified, headers: headers)
        }
        headers[.contentType] = asset.contentType
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: asset.body))
    }

    static func securityHeaders() -> HTTPFields {
        var headers = HTTPFields()
        headers[.contentSecurityPolicy] = contentSecurityPolicy
        headers[.xContentTypeOptions] = "nosniff"
        headers[.referrerPolicy] = "no-referrer"
        headers[.xFrameOptions] = "DENY"
        headers[.crossOriginOpenerPolicy] = "same-origin"
        return headers
    }
}

extension HTTPField.Name {
    static let crossOriginOpenerPolicy = HTTPField.Name("Cross-Origin-Opener-Policy")!
    static let xFrameOptions = HTTPField.Name("X-Frame-Options")!
    static let referrerPolicy = HTTPField.Name("Referrer-Policy")!
}
