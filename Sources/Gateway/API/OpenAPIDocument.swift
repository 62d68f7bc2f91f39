import NIOCore

/// The OpenAPI 3.1 document served at `/openapi.yaml`. A test checks that every
/// route of the router is in it and every path in it is a route.
///
/// The KServe v2 and Triton-extension paths, which the gateway passes through with the
/// same checks and the same refusals, are written from one table (`passthroughPaths`),
/// the same table `KServeHandler.register` builds its routes from; the rest is literal.
enum OpenAPIDocument {
    static let yaml = [head, passthroughPaths.map(render).joined(separator: "\n"), tail].joined(separator: "\n")
    /// The document as served, made once.
    static let buffer = ByteBuffer(string: yaml)

    enum Body { case none, json, infer }

    struct Operation: Sendable {
        var method: String
        var id: String
        var summary: String
        var permission = Permission.infer
        var body = Body.none
    }

    /// Every passthrough path (a template with `{name}` parameters) with its operations, in the document's order.
    static let passthroughPaths: [(path: String, operations: [Operation])] = {
        func get(_ id: String, _ summary: String, _ permission: Permission = .infer) -> Operation {
            Operation(method: "get", id: id, summary: summary, permission: permission)
        }
        func post(_ id: String, _ summary: String) -> Operation {
            Operation(method: "post", id: id, summary: summary, permission: .admin, body: .json)
        }
        var paths: [(path: String, operations: [Operation])] = [
            ("/v2", [get("serverMetadata", "Server metadata")]),
            ("/v2/health/live", [get("serverLive", "Server liveness")]),
            ("/v2/health/ready", [get("serverReady", "Server readiness")]),
        ]
        let model: [(suffix: String, operation: Operation)] = [
            ("", get("metadata", "Model metadata")),
            ("/ready", get("ready", "Model readiness")),
            ("/config", get("config", "Model configuration")),
            ("/stats", get("stats", "Model statistics")),
            ("/infer", Operation(method: "post", id: "infer", summary: "Inference (JSON or binary tensor extension)", body: .infer)),
        ]
        for versioned in [false, true] {
            for (suffix, operation) in model {
                var operation = operation
                if versioned {
                    operation.id += "Version"
                    operation.summary += " (one version)"
                }
                paths.append(("/v2/models/{model}" + (versioned ? "/versions/{version}" : "") + suffix, [operation]))
            }
        }
        paths += [
            ("/v2/models/stats", [get("allStats", "Statistics of all models", .admin)]),
            ("/v2/repository/index", [post("repositoryIndex", "Repository index")]),
            ("/v2/repository/models/{model}/load", [post("repositoryLoad", "Model load")]),
            ("/v2/repository/models/{model}/unload", [post("repositoryUnload", "Model unload")]),
        ]
        for kind in ["systemsharedmemory", "cudasharedmemory"] {
            paths += [
                ("/v2/\(kind)/status", [get("\(kind)Status", "\(kind) status", .admin)]),
                ("/v2/\(kind)/region/{region}/status", [get("\(kind)RegionStatus", "\(kind) region status", .admin)]),
                ("/v2/\(kind)/unregister", [post("\(kind)UnregisterAll", "\(kind) unregister all")]),
                ("/v2/\(kind)/region/{region}/register", [post("\(kind)RegionRegister", "\(kind) region register")]),
                ("/v2/\(kind)/region/{region}/unregister", [post("\(kind)RegionUnregister", "\(kind) region unregister")]),
            ]
        }
        paths += [
            ("/v2/trace/setting", [get("traceGet", "Global trace settings", .admin), post("tracePost", "Update global trace settings")]),
            ("/v2/models/{model}/trace/setting",
             [get("modelTraceGet", "Model trace settings", .admin), post("modelTracePost", "Update model trace settings")]),
            ("/v2/logging", [get("loggingGet", "Log settings", .admin), post("loggingPost", "Update log settings")]),
        ]
        return paths
    }()

    /// The names of a template's `{name}` parameters, in order.
    static func parameterNames(_ template: String) -> [String] {
        template.split(separator: "{").dropFirst().compactMap { $0.split(separator: "}").first.map(String.init) }
    }

    /// A path parameter's pattern (the checks themselves are `NameRules`, applied by `KServeHandler.name`).
    /// An example for a path parameter: the default route's model, Triton's first version.
    private static func example(_ name: String) -> String {
        switch name {
        case "version": return "'1'"
        case "model": return "moderation"
        default: return "input_region"
        }
    }

    private static func pattern(_ name: String) -> String {
        switch name {
        case "version": return "'^[0-9]+$'"
        case "model", "region": return "'^[A-Za-z0-9_.-]{1,128}$'"
        default: preconditionFailure("no pattern for path parameter \(name)")
        }
    }

    private static func render(_ item: (path: String, operations: [Operation])) -> String {
        var out = ["  \(item.path):"]
        let names = parameterNames(item.path)
        if !names.isEmpty {
            out.append("    parameters:")
            for name in names {
                out += [
                    "      - name: \(name)", "        in: path", "        required: true", "        example: \(example(name))",
                    "        schema:", "          type: string", "          pattern: \(pattern(name))",
                ]
            }
        }
        for operation in item.operations {
            out += [
                "    \(operation.method):",
                "      operationId: \(operation.id)",
                "      summary: \(operation.summary)",
                "      tags: [\(operation.permission == .admin ? "admin" : "kserve")]",
                "      security:",
                "        - bearer: []",
                "      x-permission: \(operation.permission.rawValue)",
                "      parameters:",
                "        - $ref: '#/components/parameters/RequestId'",
                "        - $ref: '#/components/parameters/Traceparent'",
            ]
            switch operation.body {
            case .none:
                break
            case .json:
                out += [
                    "      requestBody:", "        required: false", "        content:", "          application/json:",
                    "            schema: {type: object}",
                ]
            case .infer:
                out += [
                    "      requestBody:", "        required: true", "        content:", "          application/json:",
                    "            schema: {$ref: '#/components/schemas/InferRequest'}", "          application/octet-stream:",
                    "            schema:", "              type: string", "              contentMediaType: application/octet-stream",
                    "              description: Binary tensor extension; the JSON header length is in Inference-Header-Content-Length.",
                ]
            }
            // Every passthrough can be refused the same ways; infer also for its body.
            // Triton's own 4xx answers pass through (rewritten as problems): 404 for a model,
            // version or region it does not know.
            var codes = operation.body == .infer
                ? [400, 401, 403, 404, 413, 415, 429, 502, 503, 504] : [400, 401, 403, 404, 429, 502, 503, 504]
            if item.path.hasSuffix("/load") || item.path.hasSuffix("/unload") {
                codes.insert(409, at: 4)  // model-control-disabled: Triton runs without explicit model control
            }
            out += ["      responses:", "        '200':", "          description: \(operation.body == .infer ? "InferResponse" : "Triton's answer")"]
            for code in codes {
                out += ["        '\(code)':", "          $ref: '#/components/responses/Problem'"]
            }
        }
        return out.joined(separator: "\n")
    }

    private static let head = """
openapi: 3.1.0
info:
  title: moderation-gateway
  version: 1.0.0
  description: |
    Image moderation API and KServe v2 passthrough in front of Triton.
    Every refusal is application/problem+json (RFC 9457) with the request id in `instance`.
    Every response carries X-Request-Id. Permissions come from the bearer token's roles:
    `moderate` for /v1/moderate, `infer` for /v2 (with a per-role model allowlist), `admin` for
    repository, shared-memory, trace and logging endpoints, `metrics` for /metrics.
tags:
  - name: moderation
  - name: kserve
  - name: admin
  - name: operations
  - name: console
paths:
  /healthz:
    get:
      operationId: healthz
      summary: Process is alive
      tags: [operations]
      security: []
      parameters:
        - $ref: '#/components/parameters/RequestId'
        - $ref: '#/components/parameters/Traceparent'
      responses:
        '200':
          description: Alive
  /readyz:
    get:
      operationId: readyz
      summary: Triton reachable and the configured models ready
      tags: [operations]
      security: []
      parameters:
        - $ref: '#/components/parameters/RequestId'
        - $ref: '#/components/parameters/Traceparent'
      responses:
        '200':
          description: Ready
        '503':
          description: Not ready (Retry-After set)
  /metrics:
    get:
      operationId: metrics
      summary: Prometheus text exposition (needs the metrics permission unless metrics.require_auth is false)
      tags: [operations]
      security:
        - bearer: []
      x-permission: metrics
      parameters:
        - $ref: '#/components/parameters/RequestId'
        - $ref: '#/components/parameters/Traceparent'
      responses:
        '200':
          description: Metrics
        '401':
          $ref: '#/components/responses/Problem'
        '403':
          $ref: '#/components/responses/Problem'
  /openapi.yaml:
    get:
      operationId: openapi
      summary: This document
      tags: [operations]
      security: []
      parameters:
        - $ref: '#/components/parameters/RequestId'
        - $ref: '#/components/parameters/Traceparent'
      responses:
        '200':
          description: OpenAPI 3.1 YAML
  /v1/moderate:
    post:
      operationId: moderate
      summary: Moderate one image
      tags: [moderation]
      security:
        - bearer: []
      x-permission: moderate
      parameters:
        - $ref: '#/components/parameters/RequestId'
        - $ref: '#/components/parameters/Traceparent'
      requestBody:
        required: true
        content:
          image/jpeg:
            schema: {type: string, contentMediaType: image/jpeg}
          image/png:
            schema: {type: string, contentMediaType: image/png}
          image/webp:
            schema: {type: string, contentMediaType: image/webp}
          image/gif:
            schema: {type: string, contentMediaType: image/gif}
          image/bmp:
            schema: {type: string, contentMediaType: image/bmp}
          application/json:
            schema: {$ref: '#/components/schemas/ModerationRequest'}
      responses:
        '200':
          description: Moderation decision
          content:
            application/json:
              schema: {$ref: '#/components/schemas/ModerationResult'}
        '400':
          $ref: '#/components/responses/Problem'
        '401':
          $ref: '#/components/responses/Problem'
        '403':
          $ref: '#/components/responses/Problem'
        '408':
          $ref: '#/components/responses/Problem'
        '413':
          $ref: '#/components/responses/Problem'
        '415':
          $ref: '#/components/responses/Problem'
        '422':
          $ref: '#/components/responses/Problem'
        '429':
          $ref: '#/components/responses/Problem'
        '431':
          $ref: '#/components/responses/Problem'
        '502':
          $ref: '#/components/responses/Problem'
        '503':
          $ref: '#/components/responses/Problem'
        '504':
          $ref: '#/components/responses/Problem'
"""

    private static let tail = """
  /admin/traffic:
    get:
      operationId: adminTraffic
      summary: 'Traffic routes: revision, weights in force, canary and mirror state, last reload'
      tags: [admin]
      security:
        - bearer: []
      x-permission: admin
      parameters:
        - $ref: '#/components/parameters/RequestId'
        - $ref: '#/components/parameters/Traceparent'
      responses:
        '200':
          description: JSON report
          content:
            application/json:
              schema: {type: object}
        '401':
          $ref: '#/components/responses/Problem'
        '403':
          $ref: '#/components/responses/Problem'
        '404':
          $ref: '#/components/responses/Problem'
        '429':
          $ref: '#/components/responses/Problem'
  /admin/traffic/reload:
    post:
      operationId: adminTrafficReload
      summary: Reload the traffic file now (200 accepted or unchanged)
      tags: [admin]
      security:
        - bearer: []
      x-permission: admin
      parameters:
        - $ref: '#/components/parameters/RequestId'
        - $ref: '#/components/parameters/Traceparent'
      responses:
        '200':
          description: JSON report
          content:
            application/json:
              schema: {type: object}
        '422':
          description: The file was refused; `problems` names file, line and key; the last good revision keeps serving
          content:
            application/json:
              schema: {type: object}
        '401':
          $ref: '#/components/responses/Problem'
        '403':
          $ref: '#/components/responses/Problem'
        '404':
          $ref: '#/components/responses/Problem'
        '429':
          $ref: '#/components/responses/Problem'
  /admin/activity:
    get:
      operationId: adminActivity
      summary: The last minute per traffic variant (request rate, server errors, p50/p95 latency in 5-second slots) and refusals by reason
      tags: [admin]
      security:
        - bearer: []
      x-permission: admin
      parameters:
        - $ref: '#/components/parameters/RequestId'
        - $ref: '#/components/parameters/Traceparent'
      responses:
        '200':
          description: JSON report
          content:
            application/json:
              schema: {$ref: '#/components/schemas/Activity'}
        '401':
          $ref: '#/components/responses/Problem'
        '403':
          $ref: '#/components/responses/Problem'
        '429':
          $ref: '#/components/responses/Problem'
  /console:
    get:
      operationId: consoleRedirect
      summary: The console's page (index.html) at /console/; /console without the slash redirects there
      tags: [console]
      security: []
      parameters:
        - $ref: '#/components/parameters/RequestId'
        - $ref: '#/components/parameters/Traceparent'
      responses:
        '200':
          description: index.html (at /console/), with the same headers as /console/{asset}
        '304':
          description: Not modified (If-None-Match matched the ETag)
        '308':
          description: Location /console/
  /console/{asset}:
    parameters:
      - name: asset
        in: path
        required: true
        description: >-
          A file of the console's bundle (console.directory, read at start), by its path relative to
          that folder; empty for index.html. Only files found at start are served.
        schema: {type: string}
    get:
      operationId: consoleAsset
      summary: The web console's static files (public; all data comes from the API above, with the user's token)
      tags: [console]
      security: []
      parameters:
        - $ref: '#/components/parameters/RequestId'
        - $ref: '#/components/parameters/Traceparent'
        - name: If-None-Match
          in: header
          required: false
          schema: {type: string}
      responses:
        '200':
          description: >-
            The file, with ETag, Cache-Control no-cache and a strict Content-Security-Policy
            (same-origin scripts, styles and calls; no inline script or style).
        '304':
          description: Not modified (If-None-Match matched the ETag)
        '404':
          $ref: '#/components/responses/Problem'
  /admin/audit:
    get:
      operationId: adminAudit
      summary: 'Audit writer statistics: records, fsyncs, records per fsync, fsync latency, last sequence and anchor, failure'
      tags: [admin]
      security:
        - bearer: []
      x-permission: admin
      parameters:
        - $ref: '#/components/parameters/RequestId'
        - $ref: '#/components/parameters/Traceparent'
      responses:
        '200':
          description: JSON report
          content:
            application/json:
              schema: {type: object}
        '401':
          $ref: '#/components/responses/Problem'
        '403':
          $ref: '#/components/responses/Problem'
        '404':
          $ref: '#/components/responses/Problem'
        '429':
          $ref: '#/components/responses/Problem'
components:
  securitySchemes:
    bearer:
      type: http
      scheme: bearer
      bearerFormat: JWT
  parameters:
    RequestId:
      name: X-Request-Id
      in: header
      required: false
      description: >-
        An id of the caller. The gateway always makes its own request id (the X-Request-Id of
        the answer and the problem's instance); a value matching ^[A-Za-z0-9._-]{1,128}$ is kept
        beside it (client_request_id in the audit log, request.client_id in the logs), any other
        is ignored. CR, LF or NUL in it is refused with 400.
      schema: {type: string}
    Traceparent:
      name: traceparent
      in: header
      required: false
      description: W3C trace context; forwarded to Triton (a new one is created when absent or malformed).
      schema: {type: string}
  responses:
    Problem:
      description: A refusal (RFC 9457). 401 carries WWW-Authenticate; 429 and 503 carry Retry-After; 405 carries Allow.
      content:
        application/problem+json:
          schema: {$ref: '#/components/schemas/Problem'}
  schemas:
    Problem:
      type: object
      required: [type, title, status, detail, instance]
      properties:
        type: {type: string, format: uri}
        title: {type: string}
        status: {type: integer}
        detail: {type: string}
        instance: {type: string, description: The request id}
        error: {type: string, description: Same as detail; read by KServe clients}
    ModerationRequest:
      type: object
      required: [image]
      properties:
        image: {type: string, contentEncoding: base64}
    ModerationResult:
      type: object
      required: [request_id, decision, reasons, scores, text, model, timing_ms]
      properties:
        request_id: {type: string}
        decision: {type: string, enum: [allow, review, block]}
        reasons:
          type: array
          description: >-
            Every rule that fired. Text-rule reasons (source ocr) carry the matched span, the form it
            matched in (text = OCR lines joined in reading order, compact = spacing-insensitive) and the
            reading lines; source text_classifier is the learned offensive-text model; code ocr_capped
            means more text boxes than the pipeline reads, so a human looks.
          items:
            type: object
            properties:
              source: {type: string, enum: [classifier, detector, ocr, text_classifier]}
              code: {type: string}
              action: {type: string, enum: [review, block]}
              detail: {type: string}
              score: {type: number}
              span: {type: string}
              form: {type: string, enum: [text, compact]}
              lines: {type: array, items: {type: integer}}
        scores:
          type: object
          description: sfw, nsfw, detections, ocr_lines, ocr_min_confidence, text_classifier (null without text)
        text: {type: string, description: 'OCR text, one reading line per line'}
        evidence:
          type: [object, 'null']
          description: What the decision rests on; null when the serving pipeline does not report it.
          properties:
            matches:
              type: array
              items:
                type: object
                properties:
                  code: {type: string}
                  action: {type: string, enum: [review, block]}
                  span: {type: string, description: The matched text in its canonical form}
                  form: {type: string, enum: [text, compact]}
                  lines: {type: array, items: {type: integer}}
                  fragments: {type: array, items: {type: integer}, description: 'Indices into ocr_lines of the fragments the span was read from'}
                  confidence: {type: number, description: Lowest OCR confidence of the matched fragments}
            thresholds:
              type: object
              description: The policy the reasons were judged against; null where that action is off.
              properties:
                nsfw_review: {type: number}
                nsfw_block: {type: number}
                detector_review_min: {type: number}
                detector_block_min: {type: number}
                detector_review_classes: {type: array, items: {type: string}}
                detector_block_classes: {type: array, items: {type: string}}
                ocr_min_confidence: {type: number}
                text_classifier_review: {type: [number, 'null']}
                text_classifier_block: {type: [number, 'null']}
            detections:
              type: array
              description: >-
                The detector's boxes, best first (at most 50), in pixels of the image as sent after its EXIF
                orientation: x and y of the top-left corner, width, height.
              items:
                type: object
                properties:
                  label: {type: string}
                  score: {type: number}
                  box: {type: array, items: {type: number}, minItems: 4, maxItems: 4}
            ocr_lines:
              type: array
              description: >-
                The recognised text fragments in reading order, with their boxes as four [x, y] corners
                (clockwise from top-left) in pixels of the image as sent; box is null when unknown.
              items:
                type: object
                properties:
                  text: {type: string}
                  confidence: {type: number}
                  line: {type: integer, description: The reading line it belongs to}
                  box:
                    type: [array, 'null']
                    items: {type: array, items: {type: number}, minItems: 2, maxItems: 2}
            orientation: {type: integer, enum: [0, 90, 180, 270], description: Degrees the image was turned to read it}
            text_classifier:
              type: object
              properties:
                score: {type: [number, 'null']}
                review_threshold: {type: number}
                block_threshold: {type: [number, 'null']}
            ocr:
              type: object
              properties:
                fragments: {type: integer}
                lines: {type: integer}
                boxes: {type: [integer, 'null']}
                crops: {type: [integer, 'null']}
                capped: {type: boolean}
                crops_turned: {type: [integer, 'null']}
                orientation_score: {type: [number, 'null']}
        model:
          type: object
          properties:
            route: {type: string}
            variant: {type: string}
            name: {type: string}
            version: {type: [string, 'null']}
            revision: {type: string, description: 'Traffic file revision (first 12 hex digits); empty when not routed by it'}
        timing_ms:
          type: object
          properties:
            total: {type: number}
            upstream: {type: number}
    Activity:
      type: object
      properties:
        windowSeconds: {type: integer}
        slotSeconds: {type: integer}
        at: {type: string, format: date-time}
        variants:
          type: array
          items:
            type: object
            properties:
              route: {type: string}
              variant: {type: string}
              requests: {type: integer}
              serverErrors: {type: integer}
              ratePerSecond: {type: number}
              p50Ms: {type: [number, 'null']}
              p95Ms: {type: [number, 'null']}
              series:
                type: array
                description: One point per slot, oldest first
                items:
                  type: object
                  properties:
                    start: {type: string, format: date-time}
                    requests: {type: integer}
                    serverErrors: {type: integer}
                    p95Ms: {type: [number, 'null']}
        refusals:
          type: array
          description: Refusals in the window by problem type (and auth failure reason after a colon), most frequent first
          items:
            type: object
            properties:
              reason: {type: string}
              count: {type: integer}
    InferRequest:
      type: object
      required: [inputs]
      example:
        inputs: [{name: INPUT0, shape: [1, 2], datatype: FP32, data: [1, 2]}]
      properties:
        id: {type: string}
        parameters: {type: object}
        inputs:
          type: array
          items:
            type: object
            required: [name, shape, datatype]
            properties:
              name: {type: string}
              shape: {type: array, items: {type: integer, minimum: 0}}
              datatype: {type: string, enum: [BOOL, UINT8, UINT16, UINT32, UINT64, INT8, INT16, INT32, INT64, FP16, FP32, FP64, BF16, BYTES]}
              parameters: {type: object}
              data: {}
        outputs:
          type: array
          items:
            type: object
            required: [name]
            properties:
              name: {type: string}
              parameters: {type: object}
"""
}
