/** The media type of a Content-Type value, lower-cased, without parameters (`text/event-stream`). */
export function mediaType (contentType: string | string[] | undefined | null): string {
  const value = Array.isArray(contentType) ? contentType[0] : contentType
  return (value ?? '').split(';')[0]?.trim().toLowerCase() ?? ''
}
