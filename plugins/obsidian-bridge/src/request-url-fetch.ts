import { requestUrl, RequestUrlParam, RequestUrlResponse } from "obsidian";
import { FetchLike } from "./api-client";

/**
 * Adapts Obsidian's `requestUrl` to the fetch-like shape ApiClient takes.
 * requestUrl runs outside the renderer's CORS rules (a plain `fetch` from a plugin
 * is subject to them), and with `throw: false` it hands back error statuses
 * instead of throwing, so ApiClient can read the daemon's `{"error": ...}` body.
 */
export function requestUrlFetch(
	send: (request: RequestUrlParam) => Promise<RequestUrlResponse> = requestUrl,
): FetchLike {
	return async (url, init) => {
		const response = await send({
			url,
			method: init.method,
			headers: init.headers,
			body: init.body,
			contentType: init.body === undefined ? undefined : "application/json",
			throw: false,
		});
		return { status: response.status, text: async () => response.text };
	};
}
