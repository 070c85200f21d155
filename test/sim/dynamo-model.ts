// An in-memory DynamoDB that applies the JSON API requests dynacount sends and answers exactly as dynalite or DynamoDB Local does.

export type Flavor = "dynalite" | "ddblocal";

export interface ModelAnswer {
  status: number;
  body: Record<string, unknown>;
}

export interface ModelOptions {
  /** Asked for each key of a BatchGetItem; `true` leaves the key in `UnprocessedKeys` (as a busy server would). */
  unprocessed?: (tableName: string, key: Record<string, unknown>) => boolean;
  /** dynalite's table ARNs name the AWS_REGION (else AWS_DEFAULT_REGION) of its process. @default "us-east-1" */
  region?: string;
  /** dynalite's table ARNs name the AWS_ACCOUNT_ID of its process, digits only. @default "000000000000" */
  accountId?: string;
}

type Value = { S: string } | { N: string };
type Item = Record<string, Value>;
type Json = Record<string, unknown>;

const VALIDATION = "com.amazon.coral.validate#ValidationException";
const DDB = "com.amazonaws.dynamodb.v20120810#";
const CONDITION_FAILED = "The conditional request failed";
const MISSING_OPERAND = "The provided expression refers to an attribute that does not exist in the item";
const WRONG_TYPE = "An operand in the update expression has an incorrect data type";
const OVERFLOW = "Number overflow. Attempting to store a number with magnitude larger than supported range";
const PRECISION = "DynamoDB only supports precision up to 38 digits";

/** Thrown inside the model to end a request with an answer. */
class Reply {
  constructor(
    readonly status: number,
    readonly body: Json,
  ) {}
}

const notModelled = (what: string): Error => new Error(`DynamoModel: ${what} is not modelled`);

// ---------------------------------------------------------------------------------------------------------------
// Numbers (integers, exact, as BigInt)

const MAGNITUDE = 10n ** 126n;
const abs = (n: bigint): bigint => (n < 0n ? -n : n);
const significantDigits = (n: bigint): number => (n === 0n ? 0 : abs(n).toString().replace(/0+$/, "").length);
/** Numbers the servers accept and the model does not (decimals, exponents). */
const NON_INTEGER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/** DynamoDB's size of a number: base-100 digit pairs without leading/trailing zero pairs, one byte more, one for a sign. */
function numberSize(text: string): number {
  const n = BigInt(text);
  if (n === 0n) return 1;
  let digits = abs(n).toString();
  if (digits.length % 2) digits = `0${digits}`;
  const pairs = digits.match(/../g)!;
  while (pairs[pairs.length - 1] === "00") pairs.pop();
  return pairs.length + 1 + (n < 0n ? 1 : 0);
}

const utf8Length = (s: string): number => new TextEncoder().encode(s).length;

function itemSize(item: Item): number {
  let size = 0;
  for (const [name, value] of Object.entries(item)) size += utf8Length(name) + ("S" in value ? utf8Length(value.S) : numberSize(value.N));
  return size;
}

// ---------------------------------------------------------------------------------------------------------------
// Small helpers

const copyValue = (v: Value): Value => ("S" in v ? { S: v.S } : { N: v.N });
function copyItem(item: Item): Item {
  const out: Item = {};
  for (const [k, v] of Object.entries(item)) out[k] = copyValue(v);
  return out;
}

const isObject = (x: unknown): x is Json => typeof x === "object" && x !== null && !Array.isArray(x);

/** A JSON text with object keys sorted, for comparing requests. */
function stable(x: unknown): string {
  if (Array.isArray(x)) return `[${x.map(stable).join(",")}]`;
  if (isObject(x))
    return `{${Object.keys(x)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${stable(x[k])}`)
      .join(",")}}`;
  return JSON.stringify(x);
}

/** The iteration order of a java.util.HashMap holding `total` keys (DynamoDB Local lists unused names so). */
function javaHashOrder(keys: string[], total: number): string[] {
  let capacity = 16;
  while (total > capacity * 0.75) capacity *= 2;
  const bucket = (s: string) => {
    let h = 0;
    for (let i = 0; i < s.length; i++) h = (Math.imul(h, 31) + s.charCodeAt(i)) | 0;
    return (h ^ (h >>> 16)) & (capacity - 1);
  };
  return keys
    .map((k, i) => ({ k, b: bucket(k), i }))
    .sort((x, y) => x.b - y.b || x.i - y.i)
    .map((x) => x.k);
}

// DynamoDB's reserved words: a bare attribute name in an expression may not be one of them.
const RESERVED = new Set(
  (
    "ABORT ABSOLUTE ACTION ADD AFTER AGENT AGGREGATE ALL ALLOCATE ALTER ANALYZE AND ANY ARCHIVE ARE ARRAY AS ASC " +
    "ASCII ASENSITIVE ASSERTION ASYMMETRIC AT ATOMIC ATTACH ATTRIBUTE AUTH AUTHORIZATION AUTHORIZE AUTO AVG BACK " +
    "BACKUP BASE BATCH BEFORE BEGIN BETWEEN BIGINT BINARY BIT BLOB BLOCK BOOLEAN BOTH BREADTH BUCKET BULK BY BYTE " +
    "CALL CALLED CALLING CAPACITY CASCADE CASCADED CASE CAST CATALOG CHAR CHARACTER CHECK CLASS CLOB CLOSE CLUSTER " +
    "CLUSTERED CLUSTERING CLUSTERS COALESCE COLLATE COLLATION COLLECTION COLUMN COLUMNS COMBINE COMMENT COMMIT " +
    "COMPACT COMPILE COMPRESS CONDITION CONFLICT CONNECT CONNECTION CONSISTENCY CONSISTENT CONSTRAINT CONSTRAINTS " +
    "CONSTRUCTOR CONSUMED CONTINUE CONVERT COPY CORRESPONDING COUNT COUNTER CREATE CROSS CUBE CURRENT CURSOR CYCLE " +
    "DATA DATABASE DATE DATETIME DAY DEALLOCATE DEC DECIMAL DECLARE DEFAULT DEFERRABLE DEFERRED DEFINE DEFINED " +
    "DEFINITION DELETE DELIMITED DEPTH DEREF DESC DESCRIBE DESCRIPTOR DETACH DETERMINISTIC DIAGNOSTICS DIRECTORIES " +
    "DISABLE DISCONNECT DISTINCT DISTRIBUTE DO DOMAIN DOUBLE DROP DUMP DURATION DYNAMIC EACH ELEMENT ELSE ELSEIF " +
    "EMPTY ENABLE END EQUAL EQUALS ERROR ESCAPE ESCAPED EVAL EVALUATE EXCEEDED EXCEPT EXCEPTION EXCEPTIONS " +
    "EXCLUSIVE EXEC EXECUTE EXISTS EXIT EXPLAIN EXPLODE EXPORT EXPRESSION EXTENDED EXTERNAL EXTRACT FAIL FALSE " +
    "FAMILY FETCH FIELDS FILE FILTER FILTERING FINAL FINISH FIRST FIXED FLATTERN FLOAT FOR FORCE FOREIGN FORMAT " +
    "FORWARD FOUND FREE FROM FULL FUNCTION FUNCTIONS GENERAL GENERATE GET GLOB GLOBAL GO GOTO GRANT GREATER GROUP " +
    "GROUPING HANDLER HASH HAVE HAVING HEAP HIDDEN HOLD HOUR IDENTIFIED IDENTITY IF IGNORE IMMEDIATE IMPORT IN " +
    "INCLUDING INCLUSIVE INCREMENT INCREMENTAL INDEX INDEXED INDEXES INDICATOR INFINITE INITIALLY INLINE INNER " +
    "INNTER INOUT INPUT INSENSITIVE INSERT INSTEAD INT INTEGER INTERSECT INTERVAL INTO INVALIDATE IS ISOLATION " +
    "ITEM ITEMS ITERATE JOIN KEY KEYS LAG LANGUAGE LARGE LAST LATERAL LEAD LEADING LEAVE LEFT LENGTH LESS LEVEL " +
    "LIKE LIMIT LIMITED LINES LIST LOAD LOCAL LOCALTIME LOCALTIMESTAMP LOCATION LOCATOR LOCK LOCKS LOG LOGED LONG " +
    "LOOP LOWER MAP MATCH MATERIALIZED MAX MAXLEN MEMBER MERGE METHOD METRICS MIN MINUS MINUTE MISSING MOD MODE " +
    "MODIFIES MODIFY MODULE MONTH MULTI MULTISET NAME NAMES NATIONAL NATURAL NCHAR NCLOB NEW NEXT NO NONE NOT NULL " +
    "NULLIF NUMBER NUMERIC OBJECT OF OFFLINE OFFSET OLD ON ONLINE ONLY OPAQUE OPEN OPERATOR OPTION OR ORDER " +
    "ORDINALITY OTHER OTHERS OUT OUTER OUTPUT OVER OVERLAPS OVERRIDE OWNER PAD PARALLEL PARAMETER PARAMETERS " +
    "PARTIAL PARTITION PARTITIONED PARTITIONS PATH PERCENT PERCENTILE PERMISSION PERMISSIONS PIPE PIPELINED PLAN " +
    "POOL POSITION PRECISION PREPARE PRESERVE PRIMARY PRIOR PRIVATE PRIVILEGES PROCEDURE PROCESSED PROJECT " +
    "PROJECTION PROPERTY PROVISIONING PUBLIC PUT QUERY QUIT QUORUM RAISE RANDOM RANGE RANK RAW READ READS REAL " +
    "REBUILD RECORD RECURSIVE REDUCE REF REFERENCE REFERENCES REFERENCING REGEXP REGION REINDEX RELATIVE RELEASE " +
    "REMAINDER RENAME REPEAT REPLACE REQUEST RESET RESIGNAL RESOURCE RESPONSE RESTORE RESTRICT RESULT RETURN " +
    "RETURNING RETURNS REVERSE REVOKE RIGHT ROLE ROLES ROLLBACK ROLLUP ROUTINE ROW ROWS RULE RULES SAMPLE SATISFIES " +
    "SAVE SAVEPOINT SCAN SCHEMA SCOPE SCROLL SEARCH SECOND SECTION SEGMENT SEGMENTS SELECT SELF SEMI SENSITIVE " +
    "SEPARATE SEQUENCE SERIALIZABLE SESSION SET SETS SHARD SHARE SHARED SHORT SHOW SIGNAL SIMILAR SIZE SKEWED " +
    "SMALLINT SNAPSHOT SOME SOURCE SPACE SPACES SPARSE SPECIFIC SPECIFICTYPE SPLIT SQL SQLCODE SQLERROR " +
    "SQLEXCEPTION SQLSTATE SQLWARNING START STATE STATIC STATUS STORAGE STORE STORED STREAM STRING STRUCT STYLE " +
    "SUB SUBMULTISET SUBPARTITION SUBSTRING SUBTYPE SUM SUPER SYMMETRIC SYNONYM SYSTEM TABLE TABLESAMPLE TEMP " +
    "TEMPORARY TERMINATED TEXT THAN THEN THROUGHPUT TIME TIMESTAMP TIMEZONE TINYINT TO TOKEN TOTAL TOUCH TRAILING " +
    "TRANSACTION TRANSFORM TRANSLATE TRANSLATION TREAT TRIGGER TRIM TRUE TRUNCATE TTL TUPLE TYPE UNDER UNDO UNION " +
    "UNIQUE UNIT UNKNOWN UNLOGGED UNNEST UNPROCESSED UNSIGNED UNTIL UPDATE UPPER URL USAGE USE USER USERS USING " +
    "UUID VACUUM VALUE VALUED VALUES VARCHAR VARIABLE VARIANCE VARINT VARYING VIEW VIEWS VIRTUAL VOID WAIT WHEN " +
    "WHENEVER WHERE WHILE WINDOW WITH WITHIN WITHOUT WORK WRAPPED WRITE YEAR ZONE"
  ).split(" "),
);

// ---------------------------------------------------------------------------------------------------------------
// Expressions

type Operand = { kind: "path"; name: string } | { kind: "value"; value: Value };
type Comparator = "=" | "<>" | "<" | "<=" | ">" | ">=";
type Condition =
  | { kind: "and" | "or"; left: Condition; right: Condition }
  | { kind: "not"; arg: Condition }
  | { kind: "compare"; op: Comparator; left: Operand; right: Operand }
  | { kind: "between"; arg: Operand; low: Operand; high: Operand }
  | { kind: "exists"; exists: boolean; name: string };
type SetValue = { kind: "operand"; operand: Operand } | { kind: "arith"; op: "+" | "-"; left: Operand; right: Operand };
type Action =
  | { kind: "set"; name: string; value: SetValue }
  | { kind: "remove"; name: string }
  | { kind: "add"; name: string; value: Value };

interface Token {
  type: "name" | "value" | "ident" | "op" | "eof";
  text: string;
  at: number;
}

const TOKEN = /\s*(?:(#[A-Za-z0-9_]+)|(:[A-Za-z0-9_]+)|([A-Za-z_][A-Za-z0-9_]*)|(<>|<=|>=|[=<>(),+\-[\].]))/y;

/** What an expression may refer to, and what it used. */
interface Context {
  names: Record<string, string>;
  values: Record<string, Value>;
  usedNames: Set<string>;
  usedValues: Set<string>;
}

/** Semantic errors, reported (after a clean parse: syntax errors come first) in this order, as dynalite's grammars do. */
const ERROR_ORDER = {
  UpdateExpression: ["reserved", "unknownFunction", "section", "attrName", "attrVal", "pathOverlap", "operand", "function"],
  ConditionExpression: ["parens", "unknownFunction", "reserved", "condition"],
  ProjectionExpression: ["reserved", "attrNameVal", "pathOverlap"],
} as const;
/** Within a condition, the first simple condition with an error decides, in this order. */
const CONDITION_ORDER = ["attrNameVal", "operand", "distinct", "function"];

type Label = keyof typeof ERROR_ORDER;

/** Stands for a value or name an expression refers to without defining it (parsing goes on; the error is reported). */
const UNDEFINED_VALUE: Value = { N: "0" };

const distinct = (operator: string, name: string): string =>
  `The first operand must be distinct from the remaining operands for this operator or function; operator: ${operator}, first operand: [${name}]`;

class Parser {
  readonly #tokens: Token[] = [];
  #i = 0;
  /** The first error of each kind, as the servers record them while parsing. */
  readonly #errors = new Map<string, string>();
  /** Conditions that were written in parentheses: "((c))" is an error on both servers. */
  readonly #parenthesised = new WeakSet<Condition>();
  #undefinedNames = 0;
  /** dynalite's grammar refuses some conditions DynamoDB Local accepts. */
  dynalite = false;
  /** DynamoDB Local adds the set of allowed types to the ADD operand error. */
  addTypeSet = "";

  constructor(
    readonly source: string,
    readonly label: Label,
    readonly context: Context,
    readonly invalid: (message: string) => never,
  ) {
    if (source === "") this.fail("The expression can not be empty;");
    let at = 0;
    while (at < source.length) {
      if (/^\s*$/.test(source.slice(at))) break;
      TOKEN.lastIndex = at;
      const m = TOKEN.exec(source);
      if (!m) {
        const rest = source.slice(at).trimStart();
        this.fail(`Syntax error; token: "${rest[0]}", near: "${rest.slice(0, 3)}"`);
      }
      const type = m[1] ? "name" : m[2] ? "value" : m[3] ? "ident" : "op";
      const text = m[1] ?? m[2] ?? m[3] ?? m[4]!;
      this.#tokens.push({ type, text, at: m.index + m[0].length - text.length });
      at = TOKEN.lastIndex;
    }
    this.#tokens.push({ type: "eof", text: "<EOF>", at: source.length });
  }

  fail(message: string): never {
    return this.invalid(`Invalid ${this.label}: ${message}`);
  }

  note(kind: string, message: string): void {
    if (!this.#errors.has(kind)) this.#errors.set(kind, message);
  }

  /** After a simple condition: the first one with an error decides what the condition error is. */
  latch(): void {
    if (this.#errors.has("condition")) return;
    const kind = CONDITION_ORDER.find((k) => this.#errors.has(k));
    if (kind) this.#errors.set("condition", this.#errors.get(kind)!);
  }

  /** The end of the expression: a syntax error if there is more, else the first recorded error, if any. */
  end(): void {
    if (this.peek().type !== "eof") this.syntax();
    for (const kind of ERROR_ORDER[this.label]) {
      const message = this.#errors.get(kind);
      if (message !== undefined) this.fail(message);
    }
  }

  peek(offset = 0): Token {
    return this.#tokens[Math.min(this.#i + offset, this.#tokens.length - 1)]!;
  }

  next(): Token {
    const t = this.peek();
    if (this.#i < this.#tokens.length - 1) this.#i++;
    return t;
  }

  syntax(): never {
    const t = this.peek();
    const before = this.#tokens[this.#i - 1];
    return this.fail(`Syntax error; token: "${t.text}", near: "${before ? before.text + (t.type === "eof" ? "" : ` ${t.text}`) : t.text}"`);
  }

  isWord(word: string, offset = 0): boolean {
    const t = this.peek(offset);
    return t.type === "ident" && t.text.toUpperCase() === word;
  }

  isOp(op: string, offset = 0): boolean {
    const t = this.peek(offset);
    return t.type === "op" && t.text === op;
  }

  accept(op: string): boolean {
    if (!this.isOp(op)) return false;
    this.next();
    return true;
  }

  expect(op: string): void {
    if (!this.accept(op)) this.syntax();
  }

  /** A top-level attribute name: `#n` or a bare name. */
  path(): string {
    const t = this.peek();
    let name: string;
    if (t.type === "name") {
      this.next();
      const resolved = this.context.names[t.text];
      if (resolved === undefined) {
        this.note(
          this.label === "UpdateExpression" ? "attrName" : "attrNameVal",
          `An expression attribute name used in the document path is not defined; attribute name: ${t.text}`,
        );
        name = `\u0000undefined${this.#undefinedNames++}`;
      } else {
        this.context.usedNames.add(t.text);
        name = resolved;
      }
    } else if (t.type === "ident") {
      this.next();
      if (RESERVED.has(t.text.toUpperCase())) this.note("reserved", `Attribute name is a reserved keyword; reserved keyword: ${t.text}`);
      name = t.text;
    } else {
      return this.syntax();
    }
    if (this.isOp(".") || this.isOp("[")) throw notModelled(`nested document path in ${this.label} "${this.source}"`);
    return name;
  }

  value(): Value {
    const t = this.peek();
    if (t.type !== "value") return this.syntax();
    this.next();
    const v = this.context.values[t.text];
    if (v === undefined) {
      this.note(
        this.label === "UpdateExpression" ? "attrVal" : "attrNameVal",
        `An expression attribute value used in expression is not defined; attribute value: ${t.text}`,
      );
      return UNDEFINED_VALUE;
    }
    this.context.usedValues.add(t.text);
    return v;
  }

  /** `name(args)` after its name and "(" were read: the operands up to ")". */
  args(): Operand[] {
    const list: Operand[] = [];
    if (this.accept(")")) return list;
    do list.push(this.operand());
    while (this.accept(","));
    this.expect(")");
    return list;
  }

  operand(): Operand {
    const t = this.peek();
    if (t.type === "value") return { kind: "value", value: this.value() };
    if (t.type === "ident" && this.isOp("(", 1)) {
      if (["if_not_exists", "list_append", "size"].includes(t.text)) throw notModelled(`function ${t.text}() in ${this.label}`);
      this.next();
      this.next();
      this.note("unknownFunction", `Invalid function name; function: ${t.text}`);
      this.args();
      return { kind: "value", value: UNDEFINED_VALUE };
    }
    return { kind: "path", name: this.path() };
  }

  #overlap(names: string[], name: string): void {
    const earlier = names.find((n) => n === name);
    if (earlier !== undefined) {
      this.note(
        "pathOverlap",
        `Two document paths overlap with each other; must remove or rewrite one of these paths; path one: [${earlier}], path two: [${name}]`,
      );
    }
    names.push(name);
  }

  // Update expressions ---------------------------------------------------------------------------------------

  update(): Action[] {
    const actions: Action[] = [];
    const seen = new Set<string>();
    const paths: string[] = [];
    do {
      const t = this.peek();
      const section = t.type === "ident" ? t.text.toUpperCase() : "";
      if (section !== "SET" && section !== "REMOVE" && section !== "ADD" && section !== "DELETE") this.syntax();
      this.next();
      if (section === "DELETE") throw notModelled("the DELETE section of UpdateExpression");
      do {
        const name = this.path();
        if (section === "REMOVE") {
          this.#overlap(paths, name);
          actions.push({ kind: "remove", name });
        } else if (section === "ADD") {
          const value = this.value();
          this.#overlap(paths, name);
          if ("S" in value)
            this.note("operand", `Incorrect operand type for operator or function; operator: ADD, operand type: STRING${this.addTypeSet}`);
          actions.push({ kind: "add", name, value });
        } else {
          this.expect("=");
          const left = this.operand();
          let value: SetValue = { kind: "operand", operand: left };
          const op = this.peek();
          if (op.type === "op" && (op.text === "+" || op.text === "-")) {
            this.next();
            const right = this.operand();
            for (const o of [left, right]) {
              if (o.kind === "value" && "S" in o.value)
                this.note("function", `Incorrect operand type for operator or function; operator or function: ${op.text}, operand type: S`);
            }
            value = { kind: "arith", op: op.text, left, right };
          }
          this.#overlap(paths, name);
          actions.push({ kind: "set", name, value });
        }
      } while (this.accept(","));
      if (seen.has(section)) this.note("section", `The "${section}" section can only be used once in an update expression;`);
      seen.add(section);
    } while (this.peek().type !== "eof");
    this.end();
    return actions;
  }

  // Condition expressions ------------------------------------------------------------------------------------

  condition(): Condition {
    const c = this.or();
    this.end();
    return c;
  }

  or(): Condition {
    let left = this.and();
    while (this.isWord("OR")) {
      this.next();
      left = { kind: "or", left, right: this.and() };
    }
    return left;
  }

  and(): Condition {
    let left = this.not();
    while (this.isWord("AND")) {
      this.next();
      left = { kind: "and", left, right: this.not() };
    }
    return left;
  }

  not(): Condition {
    if (this.isWord("NOT")) {
      this.next();
      // dynalite's grammar lets NOT apply to a parenthesised or simple condition only, not to another NOT.
      if (this.dynalite && this.isWord("NOT")) this.fail(`Syntax error; Expected "(" but "${this.peek().text[0]}" found.`);
      return { kind: "not", arg: this.not() };
    }
    return this.primary();
  }

  primary(): Condition {
    if (this.accept("(")) {
      const c = this.or();
      this.expect(")");
      if (this.#parenthesised.has(c)) this.note("parens", "The expression has redundant parentheses;");
      this.#parenthesised.add(c);
      return c;
    }
    const c = this.simple();
    this.latch();
    return c;
  }

  simple(): Condition {
    const t = this.peek();
    if (t.type === "ident" && this.isOp("(", 1)) {
      this.next();
      this.next();
      if (t.text === "attribute_exists" || t.text === "attribute_not_exists") {
        const args = this.args();
        const first = args[0];
        if (args.length !== 1) {
          this.note(
            "operand",
            `Incorrect number of operands for operator or function; operator or function: ${t.text}, number of operands: ${args.length}`,
          );
        } else if (first?.kind !== "path") {
          this.note("function", `Operator or function requires a document path; operator or function: ${t.text}`);
        }
        return { kind: "exists", exists: t.text === "attribute_exists", name: first?.kind === "path" ? first.name : "" };
      }
      if (["attribute_type", "begins_with", "contains", "size"].includes(t.text))
        throw notModelled(`function ${t.text}() in ${this.label}`);
      this.note("unknownFunction", `Invalid function name; function: ${t.text}`);
      this.args();
      return { kind: "exists", exists: true, name: "" };
    }
    const left = this.operand();
    if (this.isWord("BETWEEN")) {
      this.next();
      const low = this.operand();
      if (!this.isWord("AND")) this.syntax();
      this.next();
      const high = this.operand();
      if (!this.dynalite && left.kind === "path") {
        for (const bound of [low, high])
          if (bound.kind === "path" && bound.name === left.name) this.note("distinct", distinct("BETWEEN", left.name));
      }
      if (low.kind === "value" && high.kind === "value" && low.value !== UNDEFINED_VALUE && high.value !== UNDEFINED_VALUE) {
        const [lt, ht] = [Object.keys(low.value)[0]!, Object.keys(high.value)[0]!];
        const show = (v: Value) => ("S" in v ? `{S:${v.S}}` : `{N:${v.N}}`);
        const operands = `lower bound operand: AttributeValue: ${show(low.value)}, upper bound operand: AttributeValue: ${show(high.value)}`;
        if (lt !== ht) this.note("function", `The BETWEEN operator requires same data type for lower and upper bounds; ${operands}`);
        else if (order(low.value, high.value) > 0)
          this.note("function", `The BETWEEN operator requires upper bound to be greater than or equal to lower bound; ${operands}`);
      }
      return { kind: "between", arg: left, low, high };
    }
    if (this.isWord("IN")) throw notModelled(`IN in ${this.label}`);
    const op = this.peek();
    if (op.type !== "op" || !["=", "<>", "<", "<=", ">", ">="].includes(op.text)) return this.syntax();
    this.next();
    const right = this.operand();
    if (left.kind === "path" && right.kind === "path" && left.name === right.name) this.note("distinct", distinct(op.text, left.name));
    return { kind: "compare", op: op.text as Comparator, left, right };
  }

  // Projection expressions -----------------------------------------------------------------------------------

  projection(): string[] {
    const names: string[] = [];
    const paths: string[] = [];
    do {
      const name = this.path();
      this.#overlap(paths, name);
      names.push(name);
    } while (this.accept(","));
    this.end();
    return names;
  }
}

/** Order of two values of one type (N numerically, S by UTF-16 code units). */
function order(a: Value, b: Value): number {
  if ("N" in a && "N" in b) {
    const [x, y] = [BigInt(a.N), BigInt(b.N)];
    return x < y ? -1 : x > y ? 1 : 0;
  }
  const [x, y] = ["S" in a ? a.S : "", "S" in b ? b.S : ""];
  return x < y ? -1 : x > y ? 1 : 0;
}

const typeOf = (v: Value | undefined): string | undefined => (v === undefined ? undefined : "S" in v ? "S" : "N");

interface Parsed {
  update?: Action[];
  condition?: Condition;
  projection?: string[];
}

// ---------------------------------------------------------------------------------------------------------------
// Tables

/** The operations dynalite knows; any other is an UnknownOperationException. */
const DYNALITE_OPERATIONS = new Set(
  (
    "BatchGetItem BatchWriteItem CreateTable DeleteItem DeleteTable DescribeTable DescribeTimeToLive GetItem ListTables PutItem " +
    "Query Scan TagResource UntagResource ListTagsOfResource UpdateItem UpdateTable"
  ).split(" "),
);
/** DynamoDB's operations (DynamoDB Local answers the others with UnknownOperationException). */
const DYNAMODB_OPERATIONS = new Set(
  (
    "BatchExecuteStatement BatchGetItem BatchWriteItem CreateBackup CreateGlobalTable CreateTable DeleteBackup DeleteItem " +
    "DeleteResourcePolicy DeleteTable DescribeBackup DescribeContinuousBackups DescribeContributorInsights DescribeEndpoints " +
    "DescribeExport DescribeGlobalTable DescribeGlobalTableSettings DescribeImport DescribeKinesisStreamingDestination " +
    "DescribeLimits DescribeTable DescribeTableReplicaAutoScaling DescribeTimeToLive DisableKinesisStreamingDestination " +
    "EnableKinesisStreamingDestination ExecuteStatement ExecuteTransaction ExportTableToPointInTime GetItem GetResourcePolicy " +
    "ImportTable ListBackups ListContributorInsights ListExports ListGlobalTables ListImports ListTables ListTagsOfResource " +
    "PutItem PutResourcePolicy Query RestoreTableFromBackup RestoreTableToPointInTime Scan TagResource TransactGetItems " +
    "TransactWriteItems UntagResource UpdateContinuousBackups UpdateContributorInsights UpdateGlobalTable " +
    "UpdateGlobalTableSettings UpdateItem UpdateKinesisStreamingDestination UpdateTable UpdateTableReplicaAutoScaling " +
    "UpdateTimeToLive"
  ).split(" "),
);

interface Table {
  name: string;
  attributeDefinitions: unknown;
  keySchema: unknown;
  hash: string;
  range: string | undefined;
  items: Map<string, Item>;
  /** The TTL attribute (DynamoDB Local), when enabled. */
  ttl: string | undefined;
}

interface TransactAction {
  kind: "Update" | "ConditionCheck";
  table: Table;
  id: string;
  key: Item;
  parsed: Parsed;
  returnOld: boolean;
}

/**
 * An in-memory DynamoDB of one flavor: `handle(operation, body)` applies a JSON API request atomically and
 * synchronously and returns the status and parsed body the real server would (test/server/differential.test.ts compares
 * the two on random traces; measured against dynalite 4.0.0 and DynamoDB Local 1.25.1).
 *
 * Scope: the requests of src/: CreateTable (PAY_PER_REQUEST, S keys), DescribeTable, DescribeTimeToLive,
 * UpdateTimeToLive, GetItem, BatchGetItem, UpdateItem, DeleteItem, TransactWriteItems (Update, ConditionCheck);
 * S and N values; integer numbers (exact, any size the servers take); top-level attribute paths; conditions with
 * = <> < <= > >=, BETWEEN, attribute_exists, attribute_not_exists, AND, OR, NOT, parentheses. Anything else throws
 * an Error "DynamoModel: … is not modelled", never a guess. The text after "Syntax error;" of a malformed
 * expression is the model's own (each server's parser words it differently).
 *
 * Left out of answers (clocks and random ids): CreationDateTime, TableId, BillingModeSummary.LastUpdateToPayPerRequestDateTime
 * of table descriptions (and the x-amzn-RequestId header, which is not part of a body). BatchGetItem's Responses come
 * in the request's key order; the servers' order is unspecified (dynalite shuffles at random, DynamoDB Local orders
 * by hash).
 *
 * How the two servers differ (each modelled):
 * - Error bodies: dynalite's message field is `message`, DynamoDB Local's `Message`. Texts that differ: missing table
 *   (dynalite "Requested resource not found", with ": Table: <name> not found" on DescribeTable/DescribeTimeToLive;
 *   DynamoDB Local "Cannot do operations on a non-existent table"), ResourceInUseException ("" / "Cannot create
 *   preexisting table"), keys (dynalite "The provided key element does not match the schema" for any mismatch;
 *   DynamoDB Local "The number of conditions on the keys is invalid", "One of the required keys was not given a
 *   value", "One or more parameter values were invalid: Type mismatch for key"), invalid numbers, 38-digit errors,
 *   table names, BatchGetItem limits, the ADD-operand type error (DynamoDB Local adds ", typeSet: ALLOWED_FOR_ADD_OPERAND").
 * - Order of checks: DynamoDB Local checks the table, then the key, then the expressions; dynalite the expressions
 *   (names, values, syntax, unused names) first. Both check the condition before applying the update, so a failed
 *   condition hides a type error of the update.
 * - Numbers: dynalite stores every number canonical ("007" → "7", "-0" → "0") and rejects "+5"; DynamoDB Local
 *   stores and returns the text as sent ("007", "-0", "+5") until arithmetic (ADD to an existing number,
 *   SET a = a ± :c) computes a canonical result; ADD to a missing attribute stores the operand's text as sent.
 *   Input values: over 38 significant digits or ≥ 1e126 is a ValidationException on both (dynalite checks the
 *   magnitude first, DynamoDB Local the digits). Results: dynalite never checks them (ADD past 38 digits or past
 *   1e126 is stored); DynamoDB Local rejects "DynamoDB only supports precision up to 38 digits", then "Number overflow…".
 * - ReturnValuesOnConditionCheckFailure ALL_OLD: DynamoDB Local adds `Item` (the old item, when there is one) to the
 *   ConditionalCheckFailedException and validates the value (ALL_OLD | NONE); dynalite ignores the parameter.
 * - UPDATED_NEW / UPDATED_OLD with nothing to return: dynalite `{"Attributes":{}}` (but `{}` for UPDATED_OLD on a
 *   new item), DynamoDB Local `{}`.
 * - DeleteItem of a missing item: DynamoDB Local answers `{"ConsumedCapacity":{"TableName":…,"CapacityUnits":1}}`
 *   though nobody asked; dynalite `{}`.
 * - Comparisons whose operands are both missing: dynalite `=`, `<=`, `>=` true, `<>`, `<`, `>` false; DynamoDB Local
 *   false except `<>`. (One missing operand, or two types: false except `<>`, on both.)
 * - Expressions: dynalite refuses `NOT NOT c` (syntax error); DynamoDB Local accepts it. `x BETWEEN x AND …` is
 *   "The first operand must be distinct…" on DynamoDB Local only (`#a = #a` on both). Unused
 *   ExpressionAttributeNames/Values are listed in request order by dynalite, in java.util.HashMap order by DynamoDB Local.
 * - dynalite has no UpdateTimeToLive and no TransactWriteItems: UnknownOperationException with no message field.
 *   Its DescribeTimeToLive always says DISABLED. CreateTable answers TableStatus CREATING, DescribeTable ACTIVE.
 *   DescribeTable: dynalite's ItemCount and TableSizeBytes stay 0, DynamoDB Local's are live (item sizes as DynamoDB
 *   counts them) and its ARN region is "ddblocal".
 * - TransactWriteItems (DynamoDB Local): the actions run in order on a working copy. A condition sees the updates of
 *   earlier actions; an action whose condition holds on an item an earlier action (whose condition held) already
 *   took is "Transaction request cannot include multiple operations on one item" (real DynamoDB refuses any two);
 *   an update that cannot apply is a plain ValidationException (not a cancellation), whatever the other conditions;
 *   otherwise any failed condition cancels: TransactionCanceledException with `Message` and CancellationReasons
 *   `{Code:"None"}` / `{Code:"ConditionalCheckFailed", Message, Item?}` where Message is "The conditional request
 *   failed" for an Update and "The conditional request failed." (with a period) for a ConditionCheck, and Item (on
 *   ReturnValuesOnConditionCheckFailure ALL_OLD) is the item as the working copy holds it at the end. A
 *   ClientRequestToken is remembered when its transaction succeeds: the same TransactItems again answer `{}` and
 *   change nothing (conditions are not evaluated); other TransactItems are IdempotentParameterMismatchException with
 *   `Message: ""`. Failed transactions do not record their token. Tokens never expire here (DynamoDB: 10 minutes).
 *
 * Not modelled: dynalite crashes (the request never gets an answer) on a BETWEEN whose upper bound is missing or not a
 * number while the attribute is a number at least the lower bound; the model answers false there. dynalite's tables
 * are CREATING until a zero-delay timer fires; the model's are usable at once.
 */
export class DynamoModel {
  readonly flavor: Flavor;
  readonly #tables = new Map<string, Table>();
  /** ClientRequestTokens of transactions that succeeded, with their TransactItems (DynamoDB Local). */
  readonly #tokens = new Map<string, string>();
  readonly #unprocessed: ModelOptions["unprocessed"];
  readonly #arn: string;

  constructor(flavor: Flavor, options: ModelOptions = {}) {
    this.flavor = flavor;
    this.#unprocessed = options.unprocessed;
    this.#arn =
      flavor === "dynalite"
        ? `arn:aws:dynamodb:${options.region ?? "us-east-1"}:${options.accountId ?? "000000000000"}:table/`
        : "arn:aws:dynamodb:ddblocal:000000000000:table/";
  }

  /** Applies one DynamoDB JSON API request atomically and synchronously; answers as the server of `flavor` would. */
  handle(operation: string, body: unknown): ModelAnswer {
    try {
      if (!isObject(body)) throw notModelled(`a request body that is not a JSON object (${operation})`);
      const out = this.#dispatch(operation, body);
      return { status: 200, body: out };
    } catch (e) {
      if (e instanceof Reply) return { status: e.status, body: e.body };
      throw e;
    }
  }

  /** A deep copy of every item of a table (for invariant checks), keyed by a stable string of its key: the JSON array of its key values in key-schema order, e.g. `["page:1"]` or `["page:1","2024"]`. */
  items(tableName: string): Map<string, Record<string, unknown>> {
    const out = new Map<string, Record<string, unknown>>();
    const table = this.#tables.get(tableName);
    if (table) for (const [id, item] of table.items) out.set(id, copyItem(item));
    return out;
  }

  // -------------------------------------------------------------------------------------------------------------

  #dispatch(operation: string, body: Json): Json {
    const lite = this.flavor === "dynalite";
    switch (operation) {
      case "CreateTable":
        return this.#createTable(body);
      case "DescribeTable":
        return { Table: this.#describe(this.#described(body)) };
      case "DescribeTimeToLive": {
        const table = this.#described(body);
        if (lite || table.ttl === undefined) return { TimeToLiveDescription: { TimeToLiveStatus: "DISABLED" } };
        return { TimeToLiveDescription: { TimeToLiveStatus: "ENABLED", AttributeName: table.ttl } };
      }
      case "UpdateTimeToLive":
        if (lite) break;
        return this.#updateTimeToLive(body);
      case "GetItem":
        return this.#getItem(body);
      case "BatchGetItem":
        return this.#batchGetItem(body);
      case "UpdateItem":
        return this.#updateItem(body);
      case "DeleteItem":
        return this.#deleteItem(body);
      case "TransactWriteItems":
        if (lite) break;
        return this.#transactWriteItems(body);
      default:
        if ((lite ? DYNALITE_OPERATIONS : DYNAMODB_OPERATIONS).has(operation)) throw notModelled(operation);
    }
    if (lite) throw new Reply(400, { __type: "com.amazon.coral.service#UnknownOperationException" });
    throw new Reply(400, { __type: `${DDB}UnknownOperationException`, Message: "An unknown operation was requested." });
  }

  #error(type: string, message: string, extra: Json = {}): Reply {
    return new Reply(400, { __type: type, [this.flavor === "dynalite" ? "message" : "Message"]: message, ...extra });
  }

  #invalid(message: string): never {
    throw this.#error(VALIDATION, message);
  }

  readonly #invalidate = (message: string): never => this.#invalid(message);

  // Tables -------------------------------------------------------------------------------------------------------

  #tableName(body: Json, describe = false): string {
    const name = body.TableName;
    if (typeof name !== "string") throw notModelled("a request without a TableName string");
    this.#checkTableName(name, describe);
    return name;
  }

  /** The table an item request names, or the server's ResourceNotFoundException. */
  #table(name: string): Table {
    const table = this.#tables.get(name);
    if (table) return table;
    throw this.#error(
      `${DDB}ResourceNotFoundException`,
      this.flavor === "dynalite" ? "Requested resource not found" : "Cannot do operations on a non-existent table",
    );
  }

  /** The table of DescribeTable / DescribeTimeToLive (dynalite names it in its message). */
  #described(body: Json): Table {
    const name = this.#tableName(body, true);
    const table = this.#tables.get(name);
    if (table) return table;
    if (this.flavor === "dynalite")
      throw this.#error(`${DDB}ResourceNotFoundException`, `Requested resource not found: Table: ${name} not found`);
    throw this.#error(`${DDB}ResourceNotFoundException`, "Cannot do operations on a non-existent table");
  }

  /** A table name's rules (dynalite words them per operation: only CreateTable's, DescribeTable's and DescribeTimeToLive's are modelled). */
  #checkTableName(name: string, describe = false): void {
    if (name.length >= 3 && name.length <= 255 && /^[a-zA-Z0-9_.-]+$/.test(name)) return;
    if (this.flavor === "ddblocal") {
      this.#invalid(
        "Invalid table/index name.  Table/index names must be between 3 and 255 characters long, and may contain only the characters a-z, A-Z, 0-9, '_', '-', and '.'",
      );
    }
    if (describe && (name.length < 3 || name.length > 255))
      this.#invalid("TableName must be at least 3 characters long and at most 255 characters long");
    if (describe) {
      this.#invalid(
        `1 validation error detected: Value '${name}' at 'tableName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+`,
      );
    }
    throw notModelled(`dynalite's answer to the table name "${name}"`);
  }

  #createTable(body: Json): Json {
    const name = this.#tableName(body, true);
    const schema = body.KeySchema;
    const definitions = body.AttributeDefinitions;
    if (body.BillingMode !== "PAY_PER_REQUEST") throw notModelled("CreateTable without BillingMode PAY_PER_REQUEST");
    for (const k of Object.keys(body)) {
      if (!["TableName", "KeySchema", "AttributeDefinitions", "BillingMode"].includes(k)) throw notModelled(`CreateTable's ${k}`);
    }
    if (
      !Array.isArray(schema) ||
      !Array.isArray(definitions) ||
      schema.length < 1 ||
      schema.length > 2 ||
      definitions.length !== schema.length
    ) {
      throw notModelled("this CreateTable key schema");
    }
    const names: string[] = [];
    schema.forEach((k: unknown, i) => {
      const def = definitions.find((d: unknown) => isObject(d) && isObject(k) && d.AttributeName === k.AttributeName) as Json | undefined;
      if (!isObject(k) || typeof k.AttributeName !== "string" || k.KeyType !== (i === 0 ? "HASH" : "RANGE") || def?.AttributeType !== "S") {
        throw notModelled("key schemas other than a HASH (and RANGE) key of type S");
      }
      names.push(k.AttributeName);
    });
    if (this.#tables.has(name)) {
      throw this.#error(`${DDB}ResourceInUseException`, this.flavor === "dynalite" ? "" : "Cannot create preexisting table");
    }
    const table: Table = {
      name,
      attributeDefinitions: JSON.parse(JSON.stringify(definitions)),
      keySchema: JSON.parse(JSON.stringify(schema)),
      hash: names[0]!,
      range: names[1],
      items: new Map(),
      ttl: undefined,
    };
    this.#tables.set(name, table);
    const description = this.#describe(table);
    // dynalite answers while the table is CREATING (it turns ACTIVE on a zero-delay timer, before any other request).
    if (this.flavor === "dynalite") {
      description.TableStatus = "CREATING";
      description.BillingModeSummary = { BillingMode: "PAY_PER_REQUEST" };
    }
    return { TableDescription: description };
  }

  /** A table's description, without the fields the servers fill with clocks or random ids. */
  #describe(table: Table): Json {
    const common = {
      AttributeDefinitions: JSON.parse(JSON.stringify(table.attributeDefinitions)) as unknown,
      TableName: table.name,
      KeySchema: JSON.parse(JSON.stringify(table.keySchema)) as unknown,
    };
    if (this.flavor === "dynalite") {
      return {
        ...common,
        TableArn: this.#arn + table.name,
        ItemCount: 0,
        ProvisionedThroughput: { ReadCapacityUnits: 0, WriteCapacityUnits: 0, NumberOfDecreasesToday: 0 },
        TableSizeBytes: 0,
        TableStatus: "ACTIVE",
        BillingModeSummary: { BillingMode: "PAY_PER_REQUEST" },
        TableThroughputModeSummary: { TableThroughputMode: "PAY_PER_REQUEST" },
      };
    }
    let size = 0;
    for (const item of table.items.values()) size += itemSize(item);
    return {
      ...common,
      TableStatus: "ACTIVE",
      ProvisionedThroughput: {
        LastIncreaseDateTime: 0,
        LastDecreaseDateTime: 0,
        NumberOfDecreasesToday: 0,
        ReadCapacityUnits: 0,
        WriteCapacityUnits: 0,
      },
      TableSizeBytes: size,
      ItemCount: table.items.size,
      TableArn: this.#arn + table.name,
      BillingModeSummary: { BillingMode: "PAY_PER_REQUEST" },
      DeletionProtectionEnabled: false,
    };
  }

  #updateTimeToLive(body: Json): Json {
    const table = this.#table(this.#tableName(body));
    const spec = body.TimeToLiveSpecification;
    if (!isObject(spec) || typeof spec.AttributeName !== "string" || typeof spec.Enabled !== "boolean")
      throw notModelled("this TimeToLiveSpecification");
    const { AttributeName: name, Enabled: enabled } = spec;
    if (table.ttl !== undefined && table.ttl !== name) this.#invalid("TimeToLive is active on a different AttributeName");
    if (enabled && table.ttl === name) this.#invalid("TimeToLive is already enabled");
    if (!enabled && table.ttl === undefined) this.#invalid("TimeToLive is already disabled");
    table.ttl = enabled ? name : undefined;
    return { TimeToLiveSpecification: { Enabled: enabled, AttributeName: name } };
  }

  // Keys ---------------------------------------------------------------------------------------------------------

  /** The stable id of a request's `Key` and the key attributes, or the server's ValidationException. */
  #key(table: Table, key: unknown): { id: string; key: Item } {
    const schema = table.range === undefined ? [table.hash] : [table.hash, table.range];
    if (!isObject(key)) throw notModelled("a Key that is not an object");
    const given = Object.keys(key);
    const lite = this.flavor === "dynalite";
    const mismatch = lite ? "The provided key element does not match the schema" : undefined;
    if (given.length !== schema.length) this.#invalid(mismatch ?? "The number of conditions on the keys is invalid");
    for (const name of schema) if (!(name in key)) this.#invalid(mismatch ?? "One of the required keys was not given a value");
    const values: string[] = [];
    for (const name of schema) {
      const v = key[name];
      if (!isObject(v) || typeof v.S !== "string" || Object.keys(v).length !== 1) {
        if (isObject(v) && Object.keys(v).length === 1 && ["N", "B"].includes(Object.keys(v)[0]!)) {
          this.#invalid(mismatch ?? "One or more parameter values were invalid: Type mismatch for key");
        }
        throw notModelled("this key attribute value");
      }
      if (v.S === "") {
        this.#invalid(
          `One or more parameter values ${lite ? "were invalid:" : "are not valid."} The AttributeValue for a key attribute cannot contain an empty string value. Key: ${name}`,
        );
      }
      if (utf8Length(v.S) > 1024) throw notModelled("key values over 1024 bytes");
      values.push(v.S);
    }
    const item: Item = {};
    schema.forEach((name, i) => (item[name] = { S: values[i]! }));
    return { id: JSON.stringify(values), key: item };
  }

  // Expressions --------------------------------------------------------------------------------------------------

  /** A number as the server stores it, or the server's complaint. */
  #number(text: string): { N: string } | string {
    if (this.flavor === "dynalite") {
      if (text === "") return "The parameter cannot be converted to a numeric value";
      if (!/^-?\d+$/.test(text)) {
        if (NON_INTEGER.test(text) && !text.startsWith("+")) throw notModelled(`non-integer number "${text}"`);
        return `The parameter cannot be converted to a numeric value: ${text}`;
      }
      const n = BigInt(text);
      if (abs(n) >= MAGNITUDE) return OVERFLOW;
      if (significantDigits(n) > 38) return "Attempting to store more than 38 significant digits in a Number";
      return { N: n.toString() };
    }
    if (!/^[+-]?\d+$/.test(text)) {
      if (NON_INTEGER.test(text)) throw notModelled(`non-integer number "${text}"`);
      return "A value provided cannot be converted into a number";
    }
    const n = BigInt(text);
    if (significantDigits(n) > 38) return PRECISION;
    if (abs(n) >= MAGNITUDE) return OVERFLOW;
    return { N: text };
  }

  /** The result of arithmetic as the server stores it (DynamoDB Local checks it; dynalite does not). */
  #result(n: bigint): Value {
    if (this.flavor === "ddblocal") {
      if (significantDigits(n) > 38) this.#invalid(PRECISION);
      if (abs(n) >= MAGNITUDE) this.#invalid(OVERFLOW);
    }
    return { N: n.toString() };
  }

  /** Validates ExpressionAttributeNames/Values and parses the expressions of a request (or of a transaction action). */
  #parse(body: Json, expressions: { update?: boolean; condition?: boolean; projection?: boolean }): Parsed {
    const rawNames = body.ExpressionAttributeNames;
    const rawValues = body.ExpressionAttributeValues;
    const names: Record<string, string> = {};
    const values: Record<string, Value> = {};
    if (rawNames !== undefined) {
      if (!isObject(rawNames)) throw notModelled("ExpressionAttributeNames that is not an object");
      if (Object.keys(rawNames).length === 0) this.#invalid("ExpressionAttributeNames must not be empty");
      for (const [k, v] of Object.entries(rawNames)) {
        if (!/^#[0-9a-zA-Z_]+$/.test(k)) this.#invalid(`ExpressionAttributeNames contains invalid key: Syntax error; key: "${k}"`);
        if (typeof v !== "string" || v === "") throw notModelled("an ExpressionAttributeNames value that is not a non-empty string");
        names[k] = v;
      }
    }
    if (rawValues !== undefined) {
      if (!isObject(rawValues)) throw notModelled("ExpressionAttributeValues that is not an object");
      if (Object.keys(rawValues).length === 0) this.#invalid("ExpressionAttributeValues must not be empty");
      for (const k of Object.keys(rawValues)) {
        if (!/^:[0-9a-zA-Z_]+$/.test(k)) this.#invalid(`ExpressionAttributeValues contains invalid key: Syntax error; key: "${k}"`);
      }
      for (const [k, v] of Object.entries(rawValues)) {
        if (!isObject(v) || Object.keys(v).length !== 1) throw notModelled(`attribute value ${JSON.stringify(v)}`);
        if (typeof v.S === "string") {
          values[k] = { S: v.S };
        } else if (typeof v.N === "string") {
          const n = this.#number(v.N);
          if (typeof n === "string") this.#invalid(`ExpressionAttributeValues contains invalid value: ${n} for key ${k}`);
          values[k] = n;
        } else {
          throw notModelled(`attribute value ${JSON.stringify(v)} (only S and N are)`);
        }
      }
    }
    const context: Context = { names, values, usedNames: new Set(), usedValues: new Set() };
    const parsed: Parsed = {};
    const text = (field: string): string => {
      const s = body[field];
      if (typeof s !== "string") throw notModelled(`${field} that is not a string`);
      return s;
    };
    if (expressions.update && body.UpdateExpression !== undefined) {
      const p = new Parser(text("UpdateExpression"), "UpdateExpression", context, this.#invalidate);
      if (this.flavor === "ddblocal") p.addTypeSet = ", typeSet: ALLOWED_FOR_ADD_OPERAND";
      parsed.update = p.update();
    }
    if (expressions.condition && body.ConditionExpression !== undefined) {
      const p = new Parser(text("ConditionExpression"), "ConditionExpression", context, this.#invalidate);
      p.dynalite = this.flavor === "dynalite";
      parsed.condition = p.condition();
    }
    if (expressions.projection && body.ProjectionExpression !== undefined) {
      parsed.projection = new Parser(text("ProjectionExpression"), "ProjectionExpression", context, this.#invalidate).projection();
    }
    const unused = (all: string[], used: Set<string>, what: string) => {
      let left = all.filter((k) => !used.has(k));
      if (left.length === 0) return;
      if (this.flavor === "ddblocal") left = javaHashOrder(left, all.length);
      this.#invalid(`Value provided in ${what} unused in expressions: keys: {${left.join(", ")}}`);
    };
    unused(Object.keys(names), context.usedNames, "ExpressionAttributeNames");
    unused(Object.keys(values), context.usedValues, "ExpressionAttributeValues");
    return parsed;
  }

  // Evaluation ---------------------------------------------------------------------------------------------------

  #operand(o: Operand, item: Item | undefined): Value | undefined {
    return o.kind === "value" ? o.value : item?.[o.name];
  }

  #test(c: Condition, item: Item | undefined): boolean {
    switch (c.kind) {
      case "and":
        return this.#test(c.left, item) && this.#test(c.right, item);
      case "or":
        return this.#test(c.left, item) || this.#test(c.right, item);
      case "not":
        return !this.#test(c.arg, item);
      case "exists":
        return (item?.[c.name] !== undefined) === c.exists;
      case "between": {
        const [a, lo, hi] = [this.#operand(c.arg, item), this.#operand(c.low, item), this.#operand(c.high, item)];
        if (a === undefined || lo === undefined || hi === undefined) return false;
        const t = typeOf(a);
        if (typeOf(lo) !== t || typeOf(hi) !== t) return false;
        return order(a, lo) >= 0 && order(a, hi) <= 0;
      }
      case "compare": {
        const [a, b] = [this.#operand(c.left, item), this.#operand(c.right, item)];
        if (this.flavor === "dynalite") {
          // dynalite compares types first; two missing operands have the same (no) type and compare as equal.
          if (typeOf(a) !== typeOf(b)) return c.op === "<>";
          const r = a === undefined || b === undefined ? 0 : order(a, b);
          return { "=": r === 0, "<>": r !== 0, "<": r < 0, "<=": r <= 0, ">": r > 0, ">=": r >= 0 }[c.op];
        }
        if (a === undefined || b === undefined || typeOf(a) !== typeOf(b)) return c.op === "<>";
        const r = order(a, b);
        return { "=": r === 0, "<>": r !== 0, "<": r < 0, "<=": r <= 0, ">": r > 0, ">=": r >= 0 }[c.op];
      }
    }
  }

  /** The item after `actions` (a new object); the server's ValidationException when they cannot apply. */
  #apply(actions: Action[], old: Item | undefined, key: Item): Item {
    const item = copyItem(old ?? key);
    const resolve = (o: Operand): Value => {
      const v = this.#operand(o, item);
      if (v === undefined) return this.#invalid(MISSING_OPERAND);
      return v;
    };
    // Every SET value is computed from the item as it was, before any action applies.
    const sets = new Map<Action, Value>();
    for (const a of actions) {
      if (a.kind !== "set") continue;
      const v = a.value;
      if (v.kind === "operand") {
        sets.set(a, copyValue(resolve(v.operand)));
      } else {
        const l = resolve(v.left);
        if (!("N" in l)) this.#invalid(WRONG_TYPE);
        const r = resolve(v.right);
        if (!("N" in r)) this.#invalid(WRONG_TYPE);
        const [x, y] = [BigInt(l.N), BigInt(r.N)];
        sets.set(a, this.#result(v.op === "+" ? x + y : x - y));
      }
    }
    for (const a of actions) {
      if (a.kind === "set") {
        item[a.name] = sets.get(a)!;
      } else if (a.kind === "remove") {
        delete item[a.name];
      } else {
        const existing = item[a.name];
        if (existing !== undefined && !("N" in existing)) this.#invalid(WRONG_TYPE);
        item[a.name] =
          existing === undefined ? copyValue(a.value) : this.#result(BigInt(existing.N) + BigInt((a.value as { N: string }).N));
      }
    }
    return item;
  }

  #checkKeyUpdate(table: Table, actions: Action[] | undefined): void {
    for (const a of actions ?? []) {
      if (a.name === table.hash || a.name === table.range) {
        this.#invalid(`One or more parameter values were invalid: Cannot update attribute ${a.name}. This attribute is part of the key`);
      }
    }
  }

  // Item operations ------------------------------------------------------------------------------------------------

  /** Table and key, then expressions (DynamoDB Local); or expressions, then table and key (dynalite). */
  #prepare(
    body: Json,
    expressions: { update?: boolean; condition?: boolean; projection?: boolean },
  ): { table: Table; id: string; key: Item; parsed: Parsed } {
    const name = this.#tableName(body);
    if (this.flavor === "ddblocal") {
      const table = this.#table(name);
      const { id, key } = this.#key(table, body.Key);
      return { table, id, key, parsed: this.#parse(body, expressions) };
    }
    const parsed = this.#parse(body, expressions);
    const table = this.#table(name);
    return { table, ...this.#key(table, body.Key), parsed };
  }

  #getItem(body: Json): Json {
    const { table, id, parsed } = this.#prepare(body, { projection: true });
    const item = table.items.get(id);
    if (item === undefined) return {};
    return { Item: this.#project(item, parsed.projection) };
  }

  #project(item: Item, projection: string[] | undefined): Item {
    if (projection === undefined) return copyItem(item);
    const out: Item = {};
    for (const name of projection) {
      const v = item[name];
      if (v !== undefined) out[name] = copyValue(v);
    }
    return out;
  }

  #batchGetItem(body: Json): Json {
    const request = body.RequestItems;
    if (!isObject(request) || Object.keys(request).length === 0) throw notModelled("BatchGetItem without RequestItems");
    for (const k of Object.keys(body)) if (k !== "RequestItems") throw notModelled(`BatchGetItem's ${k}`);
    const lite = this.flavor === "dynalite";
    let total = 0;
    const plans: { name: string; table: Table | undefined; spec: Json; keys: Json[]; parsed: Parsed }[] = [];
    for (const [name, spec] of Object.entries(request)) {
      this.#checkTableName(name);
      if (!isObject(spec) || !Array.isArray(spec.Keys)) throw notModelled("BatchGetItem KeysAndAttributes without Keys");
      for (const k of Object.keys(spec)) {
        if (!["Keys", "ConsistentRead", "ProjectionExpression", "ExpressionAttributeNames"].includes(k))
          throw notModelled(`BatchGetItem's ${k}`);
      }
      const keys = spec.Keys as Json[];
      total += keys.length;
      if (lite && keys.length === 0) {
        this.#invalid(
          `1 validation error detected: Value '[]' at 'requestItems.${name}.member.keys' failed to satisfy constraint: Member must have length greater than or equal to 1`,
        );
      }
      if (lite && keys.length > 100) {
        this.#invalid(
          `1 validation error detected: Value '[${keys.map((k) => JSON.stringify(k)).join(", ")}]' at 'requestItems.${name}.member.keys' failed to satisfy constraint: Member must have length less than or equal to 100`,
        );
      }
      if (!lite && keys.length === 0)
        this.#invalid(`The list of keys in RequestItems for BatchGetItem is required: ${name} has empty list`);
      plans.push({ name, table: undefined, spec, keys, parsed: {} });
    }
    if (!lite && total > 100) this.#invalid("Too many items requested for the BatchGetItem call");
    for (const plan of plans) {
      if (lite) plan.parsed = this.#parse(plan.spec, { projection: true });
    }
    const ids: string[][] = [];
    for (const plan of plans) {
      plan.table = this.#table(plan.name);
      const seen = new Set<string>();
      const list: string[] = [];
      for (const k of plan.keys) {
        const { id } = this.#key(plan.table, k);
        if (seen.has(id)) this.#invalid("Provided list of item keys contains duplicates");
        seen.add(id);
        list.push(id);
      }
      ids.push(list);
      if (!lite) plan.parsed = this.#parse(plan.spec, { projection: true });
    }
    const responses: Json = {};
    const unprocessed: Json = {};
    plans.forEach((plan, i) => {
      const found: Item[] = [];
      const left: Json[] = [];
      plan.keys.forEach((k, j) => {
        if (this.#unprocessed?.(plan.name, JSON.parse(JSON.stringify(k)) as Json)) {
          left.push(JSON.parse(JSON.stringify(k)) as Json);
          return;
        }
        const item = plan.table!.items.get(ids[i]![j]!);
        if (item !== undefined) found.push(this.#project(item, plan.parsed.projection));
      });
      responses[plan.name] = found;
      if (left.length > 0) {
        const rest: Json = { ...(JSON.parse(JSON.stringify(plan.spec)) as Json), Keys: left };
        unprocessed[plan.name] = rest;
      }
    });
    return { Responses: responses, UnprocessedKeys: unprocessed };
  }

  #returnValues(body: Json): string {
    const r = body.ReturnValues ?? "NONE";
    if (typeof r !== "string" || !["NONE", "ALL_OLD", "ALL_NEW", "UPDATED_OLD", "UPDATED_NEW"].includes(r))
      throw notModelled(`ReturnValues ${JSON.stringify(r)}`);
    return r;
  }

  /** Whether a failed condition should carry the old item (DynamoDB Local only; dynalite ignores the parameter). */
  #returnOld(r: unknown, where = "returnValuesOnConditionCheckFailure"): boolean {
    if (this.flavor === "dynalite" || r === undefined) return false;
    if (r !== "ALL_OLD" && r !== "NONE") {
      this.#invalid(
        `1 validation error detected: Value '${String(r)}' at '${where}' failed to satisfy constraint: Member must satisfy enum value set: [ALL_OLD, NONE]`,
      );
    }
    return r === "ALL_OLD";
  }

  #conditionFailed(old: Item | undefined, returnOld: boolean): Reply {
    return this.#error(
      `${DDB}ConditionalCheckFailedException`,
      CONDITION_FAILED,
      returnOld && old !== undefined ? { Item: copyItem(old) } : {},
    );
  }

  #checkFields(body: Json, operation: string, allowed: string[]): void {
    for (const k of Object.keys(body)) {
      if (!allowed.includes(k)) throw notModelled(`${operation}'s ${k}`);
    }
    if (body.ReturnConsumedCapacity !== undefined && body.ReturnConsumedCapacity !== "NONE") throw notModelled("ReturnConsumedCapacity");
  }

  #updateItem(body: Json): Json {
    this.#checkFields(body, "UpdateItem", [
      "TableName",
      "Key",
      "UpdateExpression",
      "ConditionExpression",
      "ExpressionAttributeNames",
      "ExpressionAttributeValues",
      "ReturnValues",
      "ReturnValuesOnConditionCheckFailure",
      "ReturnConsumedCapacity",
    ]);
    const { table, id, key, parsed } = this.#prepare(body, { update: true, condition: true });
    this.#checkKeyUpdate(table, parsed.update);
    const returnValues = this.#returnValues(body);
    const returnOld = this.#returnOld(body.ReturnValuesOnConditionCheckFailure);
    const old = table.items.get(id);
    if (parsed.condition && !this.#test(parsed.condition, old)) throw this.#conditionFailed(old, returnOld);
    const actions = parsed.update ?? [];
    const item = this.#apply(actions, old, key);
    table.items.set(id, item);
    const lite = this.flavor === "dynalite";
    const pick = (from: Item) => {
      const out: Item = {};
      for (const a of actions) {
        const v = from[a.name];
        if (v !== undefined) out[a.name] = copyValue(v);
      }
      return out;
    };
    switch (returnValues) {
      case "ALL_OLD":
        return old === undefined ? {} : { Attributes: copyItem(old) };
      case "ALL_NEW":
        return { Attributes: copyItem(item) };
      case "UPDATED_OLD": {
        if (old === undefined) return {};
        const out = pick(old);
        return lite || Object.keys(out).length > 0 ? { Attributes: out } : {};
      }
      case "UPDATED_NEW": {
        const out = pick(item);
        return lite || Object.keys(out).length > 0 ? { Attributes: out } : {};
      }
      default:
        return {};
    }
  }

  #deleteItem(body: Json): Json {
    this.#checkFields(body, "DeleteItem", [
      "TableName",
      "Key",
      "ConditionExpression",
      "ExpressionAttributeNames",
      "ExpressionAttributeValues",
      "ReturnValues",
      "ReturnValuesOnConditionCheckFailure",
      "ReturnConsumedCapacity",
    ]);
    const { table, id, parsed } = this.#prepare(body, { condition: true });
    const returnValues = this.#returnValues(body);
    if (returnValues !== "NONE" && returnValues !== "ALL_OLD") throw notModelled(`DeleteItem with ReturnValues ${returnValues}`);
    const returnOld = this.#returnOld(body.ReturnValuesOnConditionCheckFailure);
    const old = table.items.get(id);
    if (parsed.condition && !this.#test(parsed.condition, old)) throw this.#conditionFailed(old, returnOld);
    if (old === undefined) {
      // DynamoDB Local reports capacity, unasked, when there was nothing to delete.
      return this.flavor === "ddblocal" ? { ConsumedCapacity: { TableName: table.name, CapacityUnits: 1 } } : {};
    }
    table.items.delete(id);
    return returnValues === "ALL_OLD" ? { Attributes: copyItem(old) } : {};
  }

  // Transactions (DynamoDB Local) ----------------------------------------------------------------------------------

  #transactWriteItems(body: Json): Json {
    this.#checkFields(body, "TransactWriteItems", ["TransactItems", "ClientRequestToken", "ReturnConsumedCapacity"]);
    const list: unknown = body.TransactItems;
    if (!Array.isArray(list) || list.length === 0) {
      this.#invalid(
        `Value ${Array.isArray(list) ? "[]" : "null"} at 'transactItems' failed to satisfy constraint: Member must have length greater than or equal to 1`,
      );
    }
    if (list.length > 100) throw notModelled("more than 100 TransactItems");
    const token = body.ClientRequestToken;
    if (token !== undefined && typeof token !== "string") throw notModelled("a ClientRequestToken that is not a string");
    const fingerprint = stable(list);
    if (token !== undefined && this.#tokens.has(token)) {
      // A replay of a transaction that succeeded changes nothing and answers as it did (the token never expires here;
      // DynamoDB's lasts 10 minutes).
      if (this.#tokens.get(token) === fingerprint) return {};
      throw this.#error(`${DDB}IdempotentParameterMismatchException`, "");
    }
    const actions: TransactAction[] = [];
    list.forEach((entry: unknown, index) => {
      if (!isObject(entry) || Object.keys(entry).length !== 1) throw notModelled("a TransactItem that is not exactly one action");
      const kind = Object.keys(entry)[0]!;
      const spec = entry[kind];
      if (kind !== "Update" && kind !== "ConditionCheck") throw notModelled(`TransactWriteItems ${kind} actions`);
      if (!isObject(spec)) throw notModelled("a TransactItem action that is not an object");
      const allowed = [
        "TableName",
        "Key",
        "ConditionExpression",
        "ExpressionAttributeNames",
        "ExpressionAttributeValues",
        "ReturnValuesOnConditionCheckFailure",
      ];
      if (kind === "Update") allowed.push("UpdateExpression");
      for (const k of Object.keys(spec)) if (!allowed.includes(k)) throw notModelled(`TransactWriteItems ${kind}'s ${k}`);
      if (kind === "ConditionCheck" && spec.ConditionExpression === undefined) {
        this.#invalid(
          `Value null at 'transactItems.${index + 1}.member.conditionCheck.conditionExpression' failed to satisfy constraint: Member must not be null`,
        );
      }
      if (kind === "Update" && spec.UpdateExpression === undefined) throw notModelled("a transaction Update without UpdateExpression");
      const table = this.#table(this.#tableName(spec));
      const { id, key } = this.#key(table, spec.Key);
      const parsed = this.#parse(spec, { update: kind === "Update", condition: true });
      if (kind === "Update") this.#checkKeyUpdate(table, parsed.update);
      const returnOld = this.#returnOld(
        spec.ReturnValuesOnConditionCheckFailure,
        `transactItems.${index + 1}.member.${kind === "Update" ? "update" : "conditionCheck"}.returnValuesOnConditionCheckFailure`,
      );
      actions.push({ kind, table, id, key, parsed, returnOld });
    });
    // DynamoDB Local runs the actions in order against a working copy: a condition sees the updates of earlier
    // actions, an action on an item an earlier action (whose condition held) already took is a ValidationException
    // (an action whose condition fails takes nothing), an update that cannot apply is a ValidationException whatever
    // the other conditions say, and the old items in cancellation reasons are the working copy's at the end.
    const working = new Map<string, { table: Table; id: string; item: Item | undefined }>();
    const current = (a: TransactAction) => {
      const w = working.get(`${a.table.name}\u0000${a.id}`);
      return w === undefined ? a.table.items.get(a.id) : w.item;
    };
    const taken = new Set<string>();
    const failed: (TransactAction | undefined)[] = [];
    for (const a of actions) {
      const target = `${a.table.name}\u0000${a.id}`;
      const old = current(a);
      if (a.parsed.condition && !this.#test(a.parsed.condition, old)) {
        failed.push(a);
        continue;
      }
      if (taken.has(target)) this.#invalid("Transaction request cannot include multiple operations on one item");
      taken.add(target);
      failed.push(undefined);
      if (a.kind === "Update") working.set(target, { table: a.table, id: a.id, item: this.#apply(a.parsed.update ?? [], old, a.key) });
    }
    if (failed.some((a) => a !== undefined)) {
      const reasons = failed.map((a): Json => {
        if (a === undefined) return { Code: "None" };
        const reason: Json = { Code: "ConditionalCheckFailed", Message: a.kind === "Update" ? CONDITION_FAILED : `${CONDITION_FAILED}.` };
        const item = current(a);
        if (a.returnOld && item !== undefined) reason.Item = copyItem(item);
        return reason;
      });
      throw this.#error(
        `${DDB}TransactionCanceledException`,
        `Transaction cancelled, please refer cancellation reasons for specific reasons [${reasons.map((r) => r.Code as string).join(", ")}]`,
        { CancellationReasons: reasons },
      );
    }
    for (const w of working.values()) if (w.item !== undefined) w.table.items.set(w.id, w.item);
    if (token !== undefined) this.#tokens.set(token, fingerprint);
    return {};
  }
}
