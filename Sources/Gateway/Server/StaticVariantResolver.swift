/// Serves each route from one fixed model (from `routes.models` in the gateway
/// configuration). The traffic part replaces it with weighted, sticky variants.
public struct StaticVariantResolver: VariantResolver {
    let targets: [String: GatewayConfiguration.RouteTarget]

    public init(routes: GatewayConfiguration.Routes) {
        self.targets = routes.models
    }

    public func resolve(route: String, stickyKey: String?, headers: [(String, String)]) -> RouteDecision? {
        guard let target = targets[route] else { return nil }
        return RouteDecision(route: route, variant: "static", model: target.model, version: target.version, revision: "static")
    }

    public func observe(_ decision: RouteDecision, outcome: UpstreamOutcome) {}
}
