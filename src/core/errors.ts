// CounterError and the mapping of DynamoDB's error answers to it.
/**
 * What went wrong, as a stable string to branch on.
 *
 * - `Validation`: bad input, raised before any request is sent (or DynamoDB's own ValidationException).
 * - `Config`: missing or invalid client configuration (credentials, region, endpoint).
 * - `TableNotFound`: the table does not exist; `client.createTable()` creates it.
 * - `AccessDenied`: credentials are wrong, expired or lack permission.
 * - `Throttled`: DynamoDB rejected the request for capacity; it was not applied.
 * - `Timeout`: no complete answer within `timeoutMs`.
 * - `Network`: the connection failed or was closed.
 * - `Service`: DynamoDB failed (5xx) or answered with an error not listed above.
 * - `PrecisionLoss`: a stored value does not fit the chosen `numbers` mode.
 * - `Closed`: the buffer was closed.
 * - `Conflict`: a buffer's exactly-once marker on an item is newer than the batch it retries: another live
 *   buffer uses the same `writerId` (or a clock went back). The batch is set aside as a dead letter.
 * - `BufferFull`: a buffer holds its `maxPendingKeys` distinct keys; the add was refused, nothing was queued.
 *
 * @example
 * ```ts
 * if (error instanceof CounterError && error.code === "Throttled") await backOff();
 * ```
 */
export type CounterErrorCode =
  | "Validation"
  | "Config"
  | "TableNotFound"
  | "AccessDenied"
  | "Throttled"
  | "Timeout"
  | "Network"
  | "Service"
  | "PrecisionLoss"
  | "Closed"
  | "Conflict"
  | "BufferFull";

/** Structured fields of a {@link CounterError}, besides its message (one given as `undefined` is left out).
 *
 * @example
 * ```ts
 * new CounterError("Service", "flush failed", { retryable: true, cause: error });
 * ```
 */
export interface CounterErrorDetails {
  /** Whether trying again later may succeed. @default false */
  retryable?: boolean;
  /** Whether the failed request may have been applied by DynamoDB. @default false */
  ambiguous?: boolean;
  /** HTTP status of DynamoDB's answer, when there was one. */
  status?: number | undefined;
  /** DynamoDB's error type without its namespace, e.g. `"ResourceNotFoundException"`. */
  awsType?: string | undefined;
  /** DynamoDB's request id (`x-amzn-RequestId`), for AWS support. */
  requestId?: string | undefined;
  /** The underlying error. */
  cause?: unknown;
  /** The item as it was when a conditional write failed (`ReturnValuesOnConditionCheckFailure: "ALL_OLD"`). */
  item?: Record<string, unknown> | undefined;
  /** A cancelled transaction's `CancellationReasons`, one per action (with `Item` when asked for `ALL_OLD`). */
  cancellationReasons?: Array<{ Code?: string; Message?: string; Item?: Record<string, unknown> }> | undefined;
}

/**
 * The one error class dynacount throws.
 *
 * @example
 * ```ts
 * try {
 *   await client.increment("visits");
 * } catch (error) {
 *   if (error instanceof CounterError && error.ambiguous) {
 *     // the increment may or may not have been applied
 *   }
 * }
 * ```
 */
export class CounterError extends Error {
  override readonly name = "CounterError" as const;
  /** What went wrong. */
  readonly code: CounterErrorCode;
  /** Whether trying again later may succeed. */
  readonly retryable: boolean;
  /** Whether the failed request may have been applied by DynamoDB. */
  readonly ambiguous: boolean;
  /** HTTP status of DynamoDB's answer, when there was one. */
  readonly status?: number;
  /** DynamoDB's error type without its namespace. */
  readonly awsType?: string;
  /** DynamoDB's request id. */
  readonly requestId?: string;
  /**
   * The item as it was when a conditional write failed, when the request asked for it
   * (`ReturnValuesOnConditionCheckFailure: "ALL_OLD"`). Left out of `toJSON`: it is data, not diagnosis.
   */
  readonly item?: Record<string, unknown>;
  /**
   * Why each action of a cancelled transaction (`TransactionCanceledException`) did not apply, in order, as DynamoDB
   * sent them. Left out of `toJSON`, like `item`.
   */
  readonly cancellationReasons?: Array<{ Code?: string; Message?: string; Item?: Record<string, unknown> }>;

  constructor(code: CounterErrorCode, message: string, details: CounterErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.code = code;
    this.retryable = details.retryable ?? false;
    this.ambiguous = details.ambiguous ?? false;
    // Declared fields are own properties already (undefined until set), so one assignment sets all four.
    const { status, awsType, requestId, item, cancellationReasons } = details;
    Object.assign(this, { status, awsType, requestId, item, cancellationReasons });
  }

  /** A plain object for logs: every structured field and the message, never credentials. */
  toJSON(): Record<string, unknown> {
    // The own fields set above (name, code, retryable, ambiguous, and status, awsType, requestId when known),
    // without `item`: that is data, not diagnosis.
    const { item, cancellationReasons, ...fields } = this;
    return { ...fields, message: this.message };
  }
}

/** Whether `error` is a {@link CounterError}, optionally of one code.
 *
 * @example
 * ```ts
 * if (isCounterError(error, "TableNotFound")) await client.createTable();
 * ```
 */
export function isCounterError(error: unknown, code?: CounterErrorCode): error is CounterError {
  return error instanceof CounterError && (code === undefined || error.code === code);
}

export const validationError = (message: string): CounterError => new CounterError("Validation", message);

/**
 * `text` with every control character (C0, DEL, C1, and the line and paragraph separators) written as a
 * `\uXXXX` escape: caller text (a key, an identifier, an attribute name) and server text never make a message
 * or a log line span lines, so no one can forge a second line through them.
 */
export const printable = (text: string): string =>
  text.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);

/** Caller text for a message: quoted, printable ({@link printable}), and at most `max` characters of it. */
export const shown = (text: string, max = 200): string => `"${printable(text.length > max ? `${text.slice(0, max)}…` : text)}"`;

const THROTTLING = new Set([
  "ProvisionedThroughputExceededException",
  "ThrottlingException",
  "RequestLimitExceeded",
  "LimitExceededException",
]);
const ACCESS = new Set([
  "AccessDeniedException",
  "UnrecognizedClientException",
  "InvalidSignatureException",
  "MissingAuthenticationTokenException",
  "IncompleteSignatureException",
  "ExpiredTokenException",
  "InvalidClientTokenId",
  "SignatureDoesNotMatch",
]);

/**
 * Turns DynamoDB's error answer into a CounterError. `mayHaveApplied` says whether the call could have been
 * applied by a failure of this kind: never by a 4xx, possibly by a 5xx of a non-idempotent call.
 */
export function errorFromResponse(
  status: number,
  body: { __type?: unknown; message?: unknown; Message?: unknown; Item?: unknown; CancellationReasons?: unknown } | undefined,
  context: { requestId?: string | undefined; tableName?: string | undefined; mayHaveApplied: boolean },
): CounterError {
  const rawType = typeof body?.__type === "string" ? body.__type : "";
  const awsType = rawType.slice(rawType.lastIndexOf("#") + 1) || undefined;
  // Server text may quote the request (attribute names, values): printable, like caller text.
  const serverMessage = printable(String(body?.message ?? body?.Message ?? "").trim());
  const item = typeof body?.Item === "object" && body.Item !== null ? (body.Item as Record<string, unknown>) : undefined;
  const cancellationReasons = Array.isArray(body?.CancellationReasons)
    ? (body.CancellationReasons as CounterErrorDetails["cancellationReasons"])
    : undefined;
  const details: CounterErrorDetails = { status, awsType, requestId: context.requestId, item, cancellationReasons };
  const said = serverMessage ? `: ${serverMessage}` : "";

  if (awsType === "ResourceNotFoundException") {
    const table = context.tableName ? `Table "${context.tableName}"` : "The table";
    return new CounterError(
      "TableNotFound",
      `${table} does not exist in this region/endpoint. Create it with \`await client.createTable()\` ` +
        `(or check tableName, region and endpoint)${said}`,
      details,
    );
  }
  if (awsType !== undefined && ACCESS.has(awsType)) {
    // An expired session token is a matter of time, not of setup: credentials that refresh (a credentials
    // function, the chain's temporary ones) get new keys, so the write is retried (buffers back off and try again)
    // rather than set aside for good. It was not applied.
    const expired = awsType === "ExpiredTokenException";
    return new CounterError(
      "AccessDenied",
      `DynamoDB refused the credentials (${awsType}). ` +
        (expired
          ? "The session token expired: credentials that refresh are asked again and the request retried"
          : "Check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN and the IAM policy for this table") +
        said,
      { ...details, retryable: expired },
    );
  }
  if ((awsType !== undefined && THROTTLING.has(awsType)) || status === 429) {
    return new CounterError("Throttled", `DynamoDB throttled the request (${awsType ?? status}); it was not applied${said}`, {
      ...details,
      retryable: true,
    });
  }
  if (awsType === "ValidationException" || awsType === "SerializationException") {
    return new CounterError("Validation", `DynamoDB rejected the request${said}`, details);
  }
  // Anything else: a 5xx may have been applied (unless the call is idempotent) and is worth retrying. So is a
  // 400 conflict: the item was in a transaction, or being written in another Region of a multi-Region strongly
  // consistent global table; this request was rejected, certainly not applied, and the conflict is brief.
  const failed = status >= 500;
  const conflict = /^(?:Transaction|ReplicatedWrite)ConflictException$/.test(awsType ?? "");
  const applied = failed && context.mayHaveApplied;
  return new CounterError(
    status === 403 ? "AccessDenied" : "Service",
    `DynamoDB answered ${status}${awsType ? ` ${awsType}` : ""}${said}` +
      (applied ? "; the request may or may not have been applied" : conflict ? "; it was not applied" : ""),
    { ...details, retryable: failed || conflict, ambiguous: applied },
  );
}
