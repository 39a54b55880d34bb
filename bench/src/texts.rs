//! What residents of the Tomsk region write about, and what they are answered:
//! phrase banks from which appeals of about a kilobyte of Russian text are put
//! together, with their authors, triage categories and responses.

use rand::Rng;
use rand::seq::IndexedRandom;

/// About this many bytes of UTF-8 per appeal (some 550 Cyrillic characters).
pub const APPEAL_TEXT_BYTES: usize = 1_000;

const OPENINGS: &[&str] = &[
    "Уважаемый глава!",
    "Здравствуйте.",
    "Добрый день, уважаемая администрация.",
    "Обращаюсь к вам уже не в первый раз.",
    "Прошу обратить внимание на проблему, которая касается всех жителей нашего дома.",
    "Пишу от имени жильцов нашего подъезда.",
];

const PROBLEMS: &[&str] = &[
    "На улице {street} у дома {house} огромная яма на дороге, машины объезжают её по тротуару.",
    "Во дворе дома {house} по улице {street} третью неделю не вывозят мусор, контейнеры переполнены.",
    "В квартирах дома {house} по улице {street} холодные батареи, температура не поднимается выше пятнадцати градусов.",
    "На остановке «{street}» не работает освещение, вечером там совершенно темно и опасно.",
    "Автобус номер {house} ходит с интервалом в сорок минут вместо положенных пятнадцати.",
    "С крыши дома {house} по улице {street} свисают сосульки, а территорию никто не огородил.",
    "Детская площадка во дворе дома {house} сломана: качели оторваны, из песочницы торчат гвозди.",
    "Тротуар на улице {street} не чистят от снега, пожилые люди не могут дойти до поликлиники.",
    "В подвале дома {house} по улице {street} стоит вода, в подъезде запах сырости и комары.",
    "Напротив дома {house} по улице {street} прорвало трубу, вода течёт по дороге и замерзает.",
    "На перекрёстке улиц {street} и Ленина не работает светофор, уже были аварии.",
    "Управляющая компания не отвечает на заявки о протекающей крыше дома {house}.",
    "Бродячие собаки во дворе дома {house} по улице {street} нападают на детей по дороге в школу.",
    "В посёлке отключают электричество по нескольку раз в неделю без предупреждения.",
    "Дорогу до садового товарищества на улице {street} размыло, проехать нельзя даже на тракторе.",
];

const DETAILS: &[&str] = &[
    "Мы неоднократно звонили в управляющую компанию, но нам отвечают, что это не их зона ответственности.",
    "Заявку в единую диспетчерскую службу подавали ещё в прошлом месяце, номер заявки сохранился.",
    "Фотографии прилагаю, их также можно найти в группе нашего района во «ВКонтакте».",
    "Ситуация повторяется каждую весну, и каждый раз ремонт делают только временно.",
    "В доме живут пенсионеры и семьи с маленькими детьми, им особенно тяжело.",
    "Соседи собрали подписи, под обращением подписались более сорока человек.",
    "Прошлой осенью нам обещали всё исправить до конца года, но ничего не изменилось.",
    "Участковый приходил, составил акт, но дальше дело не сдвинулось.",
    "Из-за этого в нашем подъезде уже дважды затапливало квартиры на первом этаже.",
    "Проблема затрагивает не только наш дом, но и соседние дома по этой улице.",
];

const REQUESTS: &[&str] = &[
    "Прошу принять меры и сообщить о сроках устранения проблемы.",
    "Просим провести проверку и привлечь виновных к ответственности.",
    "Прошу включить ремонт в план работ на этот год и сообщить о результате.",
    "Просим прислать комиссию и дать письменный ответ в установленный законом срок.",
    "Надеемся на ваше вмешательство, так как другие способы уже испробованы.",
];

/// Sentences that few appeals hold, each with a word found nowhere else in these
/// banks: what a search for a rare word looks for. One appeal in
/// [`RARE_ONE_IN`] has one of them.
const RARE: &[&str] = &[
    "Шлагбаум у въезда во двор сломан и не закрывается.",
    "Во дворе вырос борщевик выше человеческого роста.",
    "На фасаде соседнего дома появились граффити.",
    "Самосвалы разбили асфальт при вывозе грунта.",
    "Над теплотрассой всю зиму стоит пар, земля не промерзает.",
    "Канализационный люк открыт, крышку унесли.",
    "Скамейки в сквере сломаны, сесть негде.",
    "Фонтан на площади не работает второй год.",
    "Велодорожку заставили машинами.",
    "В подъезде поселились голуби, всё загажено.",
    "Гололёд на лестнице к поликлинике, пожилые падают.",
    "Водосток оторвало ветром, он висит над тротуаром.",
    "Рекламный щит наклонился и может упасть на остановку.",
    "В парке спилили здоровые тополя без объявления.",
    "У школы нет пешеходного перехода и знака.",
    "Мусоропровод в нашем подъезде заварили без предупреждения.",
];

/// One appeal in this many holds a sentence of [`RARE`].
pub const RARE_ONE_IN: u32 = 250;

/// The words of [`RARE`] a search looks for, one per sentence, as residents
/// would type them.
pub const RARE_WORDS: &[&str] = &[
    "шлагбаум",
    "борщевик",
    "граффити",
    "самосвалы",
    "теплотрасса",
    "люк",
    "скамейка",
    "фонтан",
    "велодорожка",
    "голуби",
    "гололед",
    "водосток",
    "щит",
    "тополя",
    "переход",
    "мусоропровод",
];

const STREETS: &[&str] = &[
    "Ленина",
    "Пушкина",
    "Кирова",
    "Фрунзе",
    "Иркутский тракт",
    "Красноармейская",
    "Советская",
    "Учебная",
    "Никитина",
    "Елизаровых",
    "Мичурина",
    "Сибирская",
];

const FIRST_NAMES: &[&str] =
    &["Иван", "Мария", "Сергей", "Анна", "Алексей", "Ольга", "Дмитрий", "Елена", "Николай", "Татьяна"];
const LAST_NAMES: &[&str] =
    &["Иванов", "Петров", "Сидоров", "Кузнецов", "Смирнов", "Попов", "Васильев", "Соколов", "Морозов", "Новиков"];

/// Triage categories, as the assistants choose them.
pub const CATEGORIES: &[&str] =
    &["Дороги", "ЖКХ", "Благоустройство", "Транспорт", "Отопление", "Освещение", "Социальная сфера", "Экология"];

/// Triage tags.
pub const TAGS: &[&str] = &["повторное", "коллективное", "срочно", "на контроле", "выезд на место", "СМИ"];

const RESPONSES: &[&str] = &[
    "Работы по устранению выполнены подрядной организацией, результат проверен на месте.",
    "Обращение рассмотрено. Ремонт включён в план работ на текущий сезон, срок выполнения — до конца квартала.",
    "Разъясняем, что указанный участок находится в ведении регионального оператора; обращение направлено ему.",
    "Управляющей компании выдано предписание, исполнение взято на контроль администрации.",
    "По результатам выезда комиссии нарушений не выявлено, подробные разъяснения направлены заявителю.",
];

const NOTES: &[&str] = &[
    "Связались с заявителем по телефону, уточнили адрес.",
    "Запрошена информация у управляющей компании.",
    "Передано в отдел благоустройства для выезда на место.",
    "Аналогичное обращение поступало от соседей, объединяем в работе.",
];

const REASONS: &[&str] = &[
    "Требуется выезд комиссии и заключение подрядной организации.",
    "Нужен ответ регионального оператора, запрос направлен.",
    "Ответ заявителя неполный: ремонт выполнен не полностью.",
];

/// An appeal's text of about [`APPEAL_TEXT_BYTES`].
pub fn appeal_text(rng: &mut impl Rng) -> String {
    let mut text = String::with_capacity(APPEAL_TEXT_BYTES + 300);
    text.push_str(pick(rng, OPENINGS));
    while text.len() < APPEAL_TEXT_BYTES - 250 {
        let sentence = if rng.random_bool(0.5) { pick(rng, PROBLEMS) } else { pick(rng, DETAILS) };
        text.push(' ');
        text.push_str(&fill(rng, sentence));
    }
    if rng.random_ratio(1, RARE_ONE_IN) {
        text.push(' ');
        text.push_str(pick(rng, RARE));
    }
    text.push(' ');
    text.push_str(pick(rng, REQUESTS));
    text
}

/// A resident's full name.
pub fn author_name(rng: &mut impl Rng) -> String {
    let first = pick(rng, FIRST_NAMES);
    let last = pick(rng, LAST_NAMES);
    // The surname agrees with the first name: Мария Иванова, Иван Иванов.
    if first.ends_with('а') || first.ends_with('я') { format!("{last}а {first}") } else { format!("{last} {first}") }
}

/// A Tomsk mobile number.
pub fn contact(rng: &mut impl Rng) -> String {
    format!("+7 913 {:03}-{:02}-{:02}", rng.random_range(0..1000), rng.random_range(0..100), rng.random_range(0..100))
}

pub fn response(rng: &mut impl Rng) -> &'static str {
    pick(rng, RESPONSES)
}

pub fn note(rng: &mut impl Rng) -> &'static str {
    pick(rng, NOTES)
}

pub fn reason(rng: &mut impl Rng) -> &'static str {
    pick(rng, REASONS)
}

pub fn pick<T: Copy>(rng: &mut impl Rng, items: &[T]) -> T {
    // The banks above are never empty.
    *items.choose(rng).unwrap_or(&items[0])
}

fn fill(rng: &mut impl Rng, template: &str) -> String {
    template.replace("{street}", pick(rng, STREETS)).replace("{house}", &rng.random_range(1..120).to_string())
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    #[test]
    fn appeal_texts_are_about_a_kilobyte_of_valid_russian() {
        let mut rng = StdRng::seed_from_u64(7);
        for _ in 0..200 {
            let text = appeal_text(&mut rng);
            assert!((APPEAL_TEXT_BYTES - 250..APPEAL_TEXT_BYTES + 500).contains(&text.len()), "{} bytes", text.len());
            assert!(appeals_core::text::AppealText::parse(&text).is_ok(), "{text}");
        }
    }

    #[test]
    fn every_rare_word_is_found_in_its_sentence_and_in_no_other_bank() {
        use appeals_core::search::{WordQuery, index_terms};
        assert_eq!(RARE.len(), RARE_WORDS.len());
        let others: Vec<&str> =
            [OPENINGS, PROBLEMS, DETAILS, REQUESTS, STREETS, RESPONSES].into_iter().flatten().copied().collect();
        for (sentence, word) in RARE.iter().zip(RARE_WORDS) {
            let query = WordQuery::parse(word).expect("a rare word is no stop word");
            assert!(query.matches(&index_terms(sentence)), "{word} in {sentence}");
            for other in &others {
                assert!(!query.matches(&index_terms(other)), "{word} also in {other}");
            }
        }
    }
}
