#ifndef KVSCOPE_CNCURSES_SHIM_H
#define KVSCOPE_CNCURSES_SHIM_H
// SwiftPM drops pkg-config's -D_XOPEN_SOURCE, so ask for the wide API explicitly.
#ifndef NCURSES_WIDECHAR
#define NCURSES_WIDECHAR 1
#endif
#ifndef _XOPEN_SOURCE_EXTENDED
#define _XOPEN_SOURCE_EXTENDED 1
#endif
#include <locale.h>
#include <langinfo.h>
#include <wchar.h>
#include <curses.h>

// Swift cannot import function-like or expression macros; wrap the ones we use.
static inline int kv_getmaxy(WINDOW *w) { return getmaxy(w); }
static inline int kv_getmaxx(WINDOW *w) { return getmaxx(w); }
static inline attr_t kv_a_normal(void) { return A_NORMAL; }
static inline attr_t kv_a_bold(void) { return A_BOLD; }
static inline attr_t kv_a_dim(void) { return A_DIM; }
static inline attr_t kv_a_reverse(void) { return A_REVERSE; }
static inline attr_t kv_a_underline(void) { return A_UNDERLINE; }
static inline attr_t kv_color_pair(short n) { return COLOR_PAIR(n); }
static inline int kv_key_f(int n) { return KEY_F(n); }
static inline int kv_colors(void) { return COLORS; }
static inline int kv_color_pairs(void) { return COLOR_PAIRS; }
static inline mmask_t kv_button1_clicked(void) { return BUTTON1_CLICKED | BUTTON1_PRESSED | BUTTON1_RELEASED; }
static inline int kv_key_code_yes(void) { return KEY_CODE_YES; }
static inline int kv_err(void) { return ERR; }
#endif
