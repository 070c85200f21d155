// The AWS shared files' INI dialect: sections, key = value, comments, indented sub-sections; profiles from both files.

/** Settings of one profile, by key (`aws_access_key_id`, `region`, `role_arn`, …). */
export type Profile = Record<string, string>;

/**
 * Sections of one file, by name as written between the brackets. A line whose first non-blank character is
 * `#` or `;` is a comment, and so is the rest of a line from a `#` or `;` after a blank (`key = a#b` keeps
 * `a#b`). A key with an empty value opens a sub-section (`s3 =` then indented `key = value` lines), whose keys
 * are kept as `s3.key`, never as the profile's own.
 *
 * @example
 * ```ts
 * parseIni("[default]\naws_access_key_id = AKID # mine\n"); // { default: { aws_access_key_id: "AKID" } }
 * ```
 */
export function parseIni(text: string): Record<string, Profile> {
  const sections: Record<string, Profile> = Object.create(null) as Record<string, Profile>;
  let section: Profile | undefined;
  let sub: string | undefined;
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.split(/(?:^|\s)[;#]/)[0]!.trim();
    if (line.startsWith("[") && line.endsWith("]")) {
      const name = line.slice(1, -1).trim().replace(/\s+/g, " ");
      section = sections[name] ??= Object.create(null) as Profile;
      sub = undefined;
      continue;
    }
    const equals = line.indexOf("=");
    if (!section || equals < 1) continue;
    const key = line.slice(0, equals).trim();
    const value = line.slice(equals + 1).trim();
    // A line that is not indented ends a sub-section.
    if (sub !== undefined && raw.trimStart() === raw) sub = undefined;
    if (value === "") sub = key;
    else section[sub === undefined ? key : `${sub}.${key}`] = value;
  }
  return sections;
}

/**
 * Profiles by name from the config file (`[profile name]`, and `[default]`) and the credentials file (`[name]`),
 * the credentials file winning key by key, as in the AWS SDKs and CLI. Sections of the config file that are not
 * profiles (`[sso-session x]`, `[services x]`) are left out.
 *
 * @example
 * ```ts
 * profiles("[profile dev]\nregion = eu-west-1\n", "[dev]\naws_access_key_id = AKID\n").dev; // { region, aws_access_key_id }
 * ```
 */
export function profiles(configText: string | undefined, credentialsText: string | undefined): Record<string, Profile> {
  const out: Record<string, Profile> = Object.create(null) as Record<string, Profile>;
  const config = parseIni(configText ?? "");
  // `[default]` and `[profile default]` both name the default profile in the config file; the second wins.
  for (const [section, values] of Object.entries(config)) {
    const name = section === "default" ? section : /^profile (.+)$/.exec(section)?.[1];
    if (name !== undefined) out[name] = { ...out[name], ...values };
  }
  if (config["profile default"]) out.default = { ...config.default, ...config["profile default"] };
  for (const [name, values] of Object.entries(parseIni(credentialsText ?? ""))) out[name] = { ...out[name], ...values };
  return out;
}
