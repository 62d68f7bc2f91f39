import Foundation
import HTTPTypes
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTPTypes

/// Counts open connections per peer (``PeerAddress/limitKey(_:)``) and in all, shared by
/// all connections.
final class PeerConnectionCounter: Sendable {
    private struct Counts {
        var byPeer: [String: Int] = [:]
        var total = 0
    }
    private let counts = NIOLockedValueBox(Counts())
    let limit: Int
    let totalLimit: Int
    init(limit: Int, totalLimit: Int) {
        self.limit = limit
        self.totalLimit = totalLimit
    }

    func open(_ peer: String) -> Bool {
        counts.withLockedValue { counts in
            let n = counts.byPeer[peer, default: 0]
            guard n < limit, counts.total < totalLimit else { return false }
            counts.byPeer[peer] = n + 1
            counts.total += 1
            return true
        }
    }

    func close(_ peer: String) {
        counts.withLockedValue { counts in
            guard let n = counts.byPeer[peer] else { return }
            counts.byPeer[peer] = n <= 1 ? nil : n - 1
            counts.total -= 1
        }
    }
}

/// Per-connection guard after the HTTP decoder: refuses a peer's connection
/// beyond `listen.max_connections_per_peer`, and any beyond `listen.max_connections`, answers 408 and closes when the
/// first request head does not arrive within `timeouts.request` of the
/// connection opening (headers trickled, or a client that never sends), answers
/// 408 and closes when a request's body has not fully arrived within
/// `timeouts.request` of its head (or only closes, if the handler already
/// answered without waiting for the body), and quietly closes a keep-alive
/// connection left idle that long after a response.
///
/// It also answers 429 itself, before the request reaches the router, when
/// `refusal` says so (a peer over its failed-authentication budget): a flood of
/// forged tokens then costs an HTTP parse and a prepared answer, not a handler
/// task, an audit event and a signature check. It does so only when no earlier
/// request on the connection is still unanswered, and reads and drops that
/// request's body so the connection stays usable.
final class ConnectionGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    /// Retry-After seconds when a request from `peer` for `path` with this `Authorization`
    /// value is to be refused with 429 here; `nil` lets it through.
    typealias Refusal = @Sendable (_ peer: String, _ path: String, _ authorization: String?) -> Int?
    /// Told of a request this guard answered with 408 before any handler saw it (its head
    /// did not arrive in time): the audit log gets a record of it like every other answer.
    typealias TimeoutReport = @Sendable (_ requestID: String, _ connectedAt: Date, _ peer: String) -> Void

    let counter: PeerConnectionCounter
    let headTimeout: TimeAmount
    let refusal: Refusal?
    let timeoutReport: TimeoutReport?
    /// `listen.trusted_proxies`: from these peers `X-Forwarded-For` names the client.
    let trustedProxies: [PeerAddress.Block]
    /// When the connection opened (a head that never arrives is timed from here).
    private var connectedAt = Date()
    /// The id given to the latest request head read (see `HTTPField.Name.gatewayRequestID`).
    private var latestRequestID: String?
    /// The body of a request this guard refused is being read and dropped.
    private var discardingBody = false
    /// That request asked for the connection to close after its answer.
    private var closeAfterDiscard = false
    /// The socket's peer address, and the key the per-peer counts use for it.
    private var peer: String?
    private var peerKey: String?
    private var timer: Scheduled<Void>?
    private var bodyTimer: Scheduled<Void>?
    /// Request heads read and responses finished: a client may pipeline, so the
    /// request whose body is arriving can be later than the one being answered.
    private var headsRead = 0
    private var responsesEnded = 0
    /// The latest request's body has fully arrived (its `.end` was read).
    private var bodyComplete = true
    /// The oldest unanswered request's response head has been written.
    private var responseStarted = false
    private var answeredByGuard = false

    private var requestInProgress: Bool { headsRead > responsesEnded }

    init(
        counter: PeerConnectionCounter, headTimeout: TimeAmount, refusal: Refusal? = nil, timeoutReport: TimeoutReport? = nil,
        trustedProxies: [PeerAddress.Block] = []
    ) {
        self.counter = counter
        self.headTimeout = headTimeout
        self.refusal = refusal
        self.timeoutReport = timeoutReport
        self.trustedProxies = trustedProxies
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { start(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        start(context: context)
        context.fireChannelActive()
    }

    private func start(context: ChannelHandlerContext) {
        guard peer == nil else { return }
        let address = context.channel.remoteAddress?.ipAddress ?? "unknown"
        let key = PeerAddress.limitKey(address)
        guard counter.open(key) else {
            context.close(promise: nil)
            return
        }
        peer = address
        peerKey = key
        connectedAt = Date()
        armTimer(context: context)
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        bodyTimer?.cancel()
        bodyTimer = nil
        if let peerKey { counter.close(peerKey) }
        peer = nil
        peerKey = nil
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        bodyTimer?.cancel()
        if let peerKey { counter.close(peerKey) }
        peer = nil
        peerKey = nil
    }

    private func armTimer(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = schedule(context) { $0.timedOut(context: $1) }
    }

    /// Runs `action` on this channel's event loop once `timeouts.request` has passed.
    private func schedule(
        _ context: ChannelHandlerContext, _ action: @escaping (ConnectionGuard, ChannelHandlerContext) -> Void
    ) -> Scheduled<Void> {
        let loopBound = NIOLoopBound((self, context, action), eventLoop: context.eventLoop)
        return context.eventLoop.scheduleTask(in: headTimeout) {
            let (handler, context, action) = loopBound.value
            action(handler, context)
        }
    }

    private func timedOut(context: ChannelHandlerContext) {
        guard !requestInProgress, context.channel.isActive else { return }
        guard responsesEnded == 0 else {
            // An idle keep-alive connection (a pooled client between requests):
            // close it quietly. An unsolicited 408 here could be read by the
            // client as the answer to a request it is sending at that moment.
            context.close(promise: nil)
            return
        }
        let requestID = RandomIDs.uuid()
        timeoutReport?(requestID, connectedAt, peer ?? "unknown")
        answer408(context: context, requestID: requestID, detail: "The request head did not arrive in time.")
    }

    private func bodyTimedOut(context: ChannelHandlerContext) {
        bodyTimer = nil
        guard !bodyComplete, context.channel.isActive else { return }
        // The body reader must fail with the deadline (before the close below ends the
        // stream, which it would otherwise see first), not see a short body as the whole one.
        context.fireErrorCaught(BodyDeadlineExceeded())
        // A 408 only when it can be read as this request's answer: the late request is
        // the only one unanswered and its handler has not started answering. Otherwise
        // (an answer under way, or an earlier pipelined request still being answered)
        // any extra bytes would corrupt the exchange: just close.
        guard headsRead - responsesEnded == 1, !responseStarted else {
            context.close(promise: nil)
            return
        }
        answeredByGuard = true
        // The handler reading this body records it (a 408, from the same deadline) under
        // the id given to its head, which this answer carries too.
        answer408(context: context, requestID: latestRequestID ?? RandomIDs.uuid(), detail: "The request body did not arrive in time.")
    }

    private func answer408(context: ChannelHandlerContext, requestID: String, detail: String) {
        answer(context: context, GatewayProblem(.requestTimeout, "request-timeout", detail), requestID: requestID, close: true)
    }

    /// Writes `problem` as this guard's own answer, past the handlers after it.
    private func answer(context: ChannelHandlerContext, _ problem: GatewayProblem, requestID: String = RandomIDs.uuid(), close: Bool) {
        var head = HTTPResponse(status: problem.status)
        if close { head.headerFields[.connection] = "close" }
        head.headerFields[.contentType] = "application/problem+json"
        head.headerFields[.requestID] = requestID
        for (name, value) in problem.headers { head.headerFields.append(HTTPField(name: name, value: value)) }
        let body = ByteBuffer(bytes: problem.body(instance: requestID))
        head.headerFields[.contentLength] = String(body.readableBytes)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(body)), promise: nil)
        let written = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if close { written.whenComplete { _ in context.close(promise: nil) } }
    }

    /// Answers 429 for a request the `refusal` rule turns away, and starts dropping its body.
    private func refuseBeforeRouting(context: ChannelHandlerContext, _ request: HTTPRequest, client: String) -> Bool {
        guard let refusal, !requestInProgress, !discardingBody,
            let retryAfter = refusal(PeerAddress.limitKey(client), request.path ?? "", request.headerFields[.authorization])
        else { return false }
        // Counted as read and answered, so the idle rules treat the connection as one that was served.
        headsRead += 1
        responsesEnded += 1
        discardingBody = true
        closeAfterDiscard = request.headerFields[.connection]?.lowercased() == "close"
        timer?.cancel()
        timer = nil
        answer(context: context, GatewayCore.peerLimitedProblem(retryAfterSeconds: retryAfter), close: closeAfterDiscard)
        // The body must still arrive in time; one that does not ends the connection.
        bodyTimer?.cancel()
        bodyTimer = schedule(context) { handler, context in
            handler.bodyTimer = nil
            if handler.discardingBody { context.close(promise: nil) }
        }
        return true
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if discardingBody {
            if case .end = unwrapInboundIn(data) {
                discardingBody = false
                bodyTimer?.cancel()
                bodyTimer = nil
                if !closeAfterDiscard { armTimer(context: context) }
            }
            return
        }
        switch unwrapInboundIn(data) {
        case .head(var request):
            let peer = peer ?? "unknown"
            let client = trustedProxies.isEmpty
                ? peer : PeerAddress.clientAddress(peer: peer, forwardedFor: request.headerFields[values: .xForwardedFor], trusted: trustedProxies)
            if refuseBeforeRouting(context: context, request, client: client) { return }
            let requestID = RandomIDs.uuid()
            request.headerFields[values: .gatewayRequestID] = [requestID]
            request.headerFields[values: .gatewayClientAddress] = [client]
            latestRequestID = requestID
            headsRead += 1
            bodyComplete = false
            timer?.cancel()
            timer = nil
            bodyTimer?.cancel()
            bodyTimer = schedule(context) { $0.bodyTimedOut(context: $1) }
            context.fireChannelRead(wrapInboundOut(.head(request)))
            return
        case .end:
            bodyComplete = true
            bodyTimer?.cancel()
            bodyTimer = nil
        case .body:
            break
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if answeredByGuard {
            // The 408 already answered this request and the connection is closing:
            // the handler's late answer must not follow it.
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        switch unwrapOutboundIn(data) {
        case .head:
            responseStarted = true
        case .end:
            responseStarted = false
            responsesEnded += 1
            // The idle timer runs only while no request is waiting for its answer.
            if !requestInProgress { armTimer(context: context) }
        case .body:
            break
        }
        context.write(data, promise: promise)
    }
}

/// Fired into the pipeline when a request body misses its deadline, so a handler reading it
/// gets an error instead of a body that merely ended early.
struct BodyDeadlineExceeded: Error {}
