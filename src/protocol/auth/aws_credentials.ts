// The AWS shared credentials file (~/.aws/credentials, or a mounted Secret holding the same text): INI sections named
// after profiles, each with aws_access_key_id, aws_secret_access_key and, for temporary credentials,
// aws_session_token. https://docs.aws.amazon.com/sdkref/latest/guide/file-format.html
//
// Errors name the profile, the key and the line, never a value: any value may be a secret.
import type { AwsCredentials } from "./aws_sigv4.ts";

export class AwsCredentialsError extends Error {
  override name = "AwsCredentialsError";
}

type Profiles = Map<string, Map<string, string>>;

function parseIni(text: string): Profiles {
  const profiles: Profiles = new Map();
  let current: Map<string, string> | undefined;
  const lines = text.replace(/^\uFEFF/, "").split(/\r\n|\r|\n/);
  for (const [i, raw] of lines.entries()) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    const section = /^\[\s*([^\]]*?)\s*\]$/.exec(line);
    if (section) {
      const name = section[1]!;
      if (name === "") throw new AwsCredentialsError(`AWS credentials file line ${i + 1} names an empty profile`);
      current = profiles.get(name) ?? new Map();
      profiles.set(name, current);
      continue;
    }
    const eq = line.indexOf("=");
    if (eq <= 0) {
      throw new AwsCredentialsError(
        `AWS credentials file line ${i + 1} is neither a [profile] header nor a key = value setting`,
      );
    }
    if (!current) {
      throw new AwsCredentialsError(`AWS credentials file line ${i + 1} sets a key before any [profile] header`);
    }
    current.set(line.slice(0, eq).trim().toLowerCase(), line.slice(eq + 1).trim());
  }
  return profiles;
}

/** The credentials of one profile ("default" unless named). Throws AwsCredentialsError, without secrets in it. */
export function parseAwsCredentialsFile(text: string, profile = "default"): AwsCredentials {
  const settings = parseIni(text).get(profile);
  if (!settings) throw new AwsCredentialsError(`AWS credentials file has no [${profile}] profile`);
  const need = (key: string): string => {
    const value = settings.get(key);
    if (!value) throw new AwsCredentialsError(`AWS credentials profile [${profile}] has no ${key}`);
    return value;
  };
  const accessKeyId = need("aws_access_key_id");
  const secretAccessKey = need("aws_secret_access_key");
  // aws_security_token is the older name the CLI and SDKs still read.
  const sessionToken = settings.get("aws_session_token") || settings.get("aws_security_token");
  return { accessKeyId, secretAccessKey, ...(sessionToken ? { sessionToken } : {}) };
}
