/** Recognisable fake secrets, so tests can prove they never leak. */
export const SECRET = "TESTSECRETdoNotLeak0123456789abcdefghijk";
export const SESSION_TOKEN = "TESTSESSIONTOKENdoNotLeakEitherZYXWVUT";
export const credentials = { accessKeyId: "AKIDTESTLOCAL", secretAccessKey: SECRET, sessionToken: SESSION_TOKEN };
