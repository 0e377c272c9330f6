/** The parameters of "Run as job" as a person types them (pure: tested without JupyterLab). */

import { isRecord } from '../api/types';

/** Parameters as typed: a JSON object (empty text: none), or the sentence saying why not. */
export function parseParameters(text: string): Record<string, unknown> | string {
  if (!text.trim()) {
    return {};
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return `The parameters are not valid JSON (${err instanceof Error ? err.message : String(err)}).`;
  }
  if (!isRecord(value) || Array.isArray(value)) {
    return 'The parameters must be a JSON object, such as {"epochs": 3}.';
  }
  return value;
}
