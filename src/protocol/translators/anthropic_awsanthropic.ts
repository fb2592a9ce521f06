// Anthropic Messages client → Claude on AWS Bedrock InvokeModel: the model moves into the path, anthropic_version into the body, and the event-stream answer becomes the Anthropic SSE the client's SDK reads.
import type { Translator } from "./translator.ts";
import { awsAnthropicBackend } from "./anthropic_backends.ts";
import { anthropicToAnthropicFamily } from "./anthropic_family.ts";

export const anthropicAwsAnthropic: Translator = anthropicToAnthropicFamily(awsAnthropicBackend);
